import type { Kysely } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * `asset_locks` (issue 14): on SQLite, the lock on one sha256's asset rows and
 * stored object is a lease row here (AssetsRepo.withShaLock), so no write
 * transaction stays open across a storage call. PostgreSQL uses advisory
 * locks and leaves the table empty.
 */
export async function up(db: Kysely<unknown>, _h: SchemaHelpers): Promise<void> {
  await db.schema
    .createTable('asset_locks')
    .ifNotExists()
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_ms', 'bigint', (c) => c.notNull())
    .execute();
}

import { Kysely, type Migration, type MigrationProvider, Migrator, SqliteDialect } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { openSqliteFile } from './database.js';
import * as m0001 from './migrations/0001-initial-schema.js';
import * as m0002 from './migrations/0002-stats-rollups.js';
import * as m0003 from './migrations/0003-query-indexes.js';
import * as m0004 from './migrations/0004-cache-log-and-stats-freshness.js';
import * as m0005 from './migrations/0005-task-run-keys.js';
import * as m0006 from './migrations/0006-media-assets.js';
import * as m0007 from './migrations/0007-observability.js';
import * as m0009 from './migrations/0009-asset-locks.js';
import { schemaHelpers, type SchemaHelpers } from './migrations/schema-helpers.js';
import type { Database, Dialect } from './types.js';

type MigrationModule = { up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> };

/** The one migration set; each entry produces both dialects through SchemaHelpers. Names sort in order. */
const MIGRATIONS: Record<string, MigrationModule> = {
  '0001-initial-schema': m0001,
  '0002-stats-rollups': m0002,
  '0003-query-indexes': m0003,
  '0004-cache-log-and-stats-freshness': m0004,
  '0005-task-run-keys': m0005,
  '0006-media-assets': m0006,
  '0007-observability': m0007,
  '0009-asset-locks': m0009,
};

class DialectMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const h = schemaHelpers(this.dialect);
    return Object.fromEntries(
      Object.entries(MIGRATIONS).map(([name, mod]) => [name, { up: (db: Kysely<unknown>) => mod.up(db, h) }]),
    );
  }
}

export interface MigrationStatus {
  name: string;
  executedAt: string | null;
}

export interface MigrateResult {
  applied: string[];
}

/**
 * Migrations may land out of number order (numbers are reserved per change, and changes
 * merge in any order), so a database that already ran a higher one still gets a lower
 * one added later; each migration touches only its own tables and indexes.
 */
function migrator(db: Kysely<Database>, dialect: Dialect, disableTransactions = false): Migrator {
  return new Migrator({
    db,
    provider: new DialectMigrationProvider(dialect),
    allowUnorderedMigrations: true,
    disableTransactions,
  });
}

async function migrateWith(migrator: Migrator): Promise<MigrateResult> {
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

/**
 * Applies pending migrations. Safe when several processes start at once:
 * PostgreSQL serialises through Kysely's advisory lock. A SQLite file is
 * migrated on a connection of its own inside one `begin immediate`
 * transaction: the database's own write lock keeps other processes out (they
 * wait, then find nothing pending), every pending migration commits together
 * or not at all, and no lock file is left beside the database.
 */
export async function migrateToLatest(db: Kysely<Database>, config: DatabaseConfig): Promise<MigrateResult> {
  if (config.dialect !== 'sqlite' || config.file === ':memory:')
    return migrateWith(migrator(db, config.dialect));
  const conn = openSqliteFile(config.file, Math.max(config.busyTimeoutMs, 60_000));
  const own = new Kysely<Database>({ dialect: new SqliteDialect({ database: conn }) });
  try {
    conn.exec('begin immediate');
    try {
      const result = await migrateWith(migrator(own, 'sqlite', true));
      conn.exec('commit');
      return result;
    } catch (err) {
      conn.exec('rollback');
      throw err;
    }
  } finally {
    await own.destroy();
  }
}

export async function migrationStatus(db: Kysely<Database>, dialect: Dialect): Promise<MigrationStatus[]> {
  const list = await migrator(db, dialect).getMigrations();
  return list.map((m) => ({ name: m.name, executedAt: m.executedAt ? m.executedAt.toISOString() : null }));
}

/** True when every known migration has run. */
export async function migrationsCurrent(db: Kysely<Database>, dialect: Dialect): Promise<boolean> {
  return (await migrationStatus(db, dialect)).every((m) => m.executedAt !== null);
}

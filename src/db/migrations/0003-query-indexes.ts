import { type Kysely, sql } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * Indexes the hot list queries need beyond DESIGN.md's named set (which stays).
 *
 * `idx_campaigns_client_status_created` serves "campaigns of a client with a
 * status, newest first" (`CampaignsRepo.list`): the page is read in order from
 * the index and stops after `limit` entries, however many campaigns the client
 * has. Without it PostgreSQL intersects idx_campaigns_client_id with the
 * low-selectivity idx_campaigns_status (a bitmap over a quarter of the table)
 * and sorts; SQLite reads every campaign of the client and sorts.
 */
export async function up(db: Kysely<unknown>, _h: SchemaHelpers): Promise<void> {
  await sql`create index if not exists idx_campaigns_client_status_created on campaigns (client_id, status, created_at desc, id desc)`.execute(
    db,
  );
}

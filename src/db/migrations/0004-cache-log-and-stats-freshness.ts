import { type Kysely, sql } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * `cache_generation_log` (SQLite only): cache generation bumps made by one process,
 * read by every other process that opened the same database file, so their in-process
 * caches follow writes made elsewhere (src/cache/sqlite-generation-log.ts). `seq` orders
 * the rows; SQLite serialises writers, so rows become visible in `seq` order. PostgreSQL
 * deployments share generations through Redis instead (a sequence there can commit out of
 * order, which a reader following `seq` would skip), so the table is not created there.
 *
 * `campaign_stats_freshness`: per campaign, when metrics were last ingested and when the
 * last complete roll-up of it started, so GET /campaigns/{id}/stats can say whether its
 * roll-ups include every metric ingested.
 */
export async function up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  if (h.dialect === 'sqlite') {
    await sql`create table if not exists cache_generation_log (
      seq integer primary key autoincrement,
      origin text not null,
      names text not null,
      created_ms integer not null
    )`.execute(db);
  }
  await db.schema
    .createTable('campaign_stats_freshness')
    .ifNotExists()
    .addColumn('campaign_id', 'integer', (c) => c.primaryKey().references('campaigns.id').onDelete('cascade'))
    .addColumn('metrics_at', h.timestamp)
    .addColumn('computed_at', h.timestamp)
    .execute();
}

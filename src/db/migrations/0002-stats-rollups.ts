import { type Kysely, sql } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * Daily roll-ups of performance_metrics, written by the `stats.aggregate` task and
 * served by GET /api/v1/campaigns/{id}/stats: one row per content and day (its
 * last snapshot of the day) and one per campaign and day (the sum over its contents).
 */
export async function up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  await h
    .table(db, 'content_stats_daily')
    .addColumn('content_id', 'integer', (c) => c.notNull().references('contents.id').onDelete('cascade'))
    .addColumn('campaign_id', 'integer', (c) => c.notNull().references('campaigns.id').onDelete('cascade'))
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('samples', 'integer', (c) => c.notNull())
    .addColumn('views', 'bigint', (c) => c.notNull())
    .addColumn('likes', 'bigint', (c) => c.notNull())
    .addColumn('comments', 'bigint', (c) => c.notNull())
    .addColumn('shares', 'bigint', (c) => c.notNull())
    .addColumn('watch_time_s', h.float, (c) => c.notNull())
    .addColumn('ctr', h.float, (c) => c.notNull())
    .addColumn('engagement_rate', h.float, (c) => c.notNull())
    .addColumn('performance_score', h.float, (c) => c.notNull())
    .execute();
  await h
    .table(db, 'campaign_stats_daily')
    .addColumn('campaign_id', 'integer', (c) => c.notNull().references('campaigns.id').onDelete('cascade'))
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('contents', 'integer', (c) => c.notNull())
    .addColumn('views', 'bigint', (c) => c.notNull())
    .addColumn('likes', 'bigint', (c) => c.notNull())
    .addColumn('comments', 'bigint', (c) => c.notNull())
    .addColumn('shares', 'bigint', (c) => c.notNull())
    .addColumn('watch_time_s', h.float, (c) => c.notNull())
    .addColumn('avg_ctr', h.float, (c) => c.notNull())
    .addColumn('avg_engagement_rate', h.float, (c) => c.notNull())
    .addColumn('avg_performance_score', h.float, (c) => c.notNull())
    .execute();
  await sql`create unique index if not exists idx_content_stats_daily_content_day on content_stats_daily (content_id, day)`.execute(
    db,
  );
  await sql`create index if not exists idx_content_stats_daily_campaign_day on content_stats_daily (campaign_id, day)`.execute(
    db,
  );
  await sql`create unique index if not exists idx_campaign_stats_daily_campaign_day on campaign_stats_daily (campaign_id, day)`.execute(
    db,
  );
  await sql`create index if not exists idx_task_runs_finished_at on task_runs (finished_at)`.execute(db);
}

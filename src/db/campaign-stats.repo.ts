import { sql } from 'kysely';
import type { MetricRow } from './metrics.repo.js';
import type { Db, Dialect } from './types.js';

/** A campaign's day, summed over its contents (campaign_stats_daily). */
export interface CampaignStatsDay {
  day: string;
  contents: number;
  views: number;
  likes: number;
  comments: number;
  shares: number;
  watch_time_s: number;
  avg_ctr: number;
  avg_engagement_rate: number;
  avg_performance_score: number;
}

/** One content's day: its last snapshot and the number of samples (content_stats_daily). */
export interface ContentStatsDay extends Omit<MetricRow, 'recorded_at'> {
  content_id: number;
  day: string;
  samples: number;
}

export interface CampaignStats {
  campaign_id: number;
  days: CampaignStatsDay[];
  contents: ContentStatsDay[];
  /** When the last complete roll-up of this campaign ran (null: never). */
  computed_at: string | null;
  /** When metrics were last ingested for one of its contents (null: never). */
  metrics_ingested_at: string | null;
  /** True when metrics were ingested at or after the last complete roll-up (or there was none): the roll-ups miss some. */
  stale: boolean;
}

/**
 * The database's clock at the moment the statement runs, as an ISO string on SQLite
 * (PostgreSQL's now() is the transaction's start, which would be too early here).
 */
const clock = (dialect: Dialect) =>
  dialect === 'sqlite' ? sql`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` : sql`clock_timestamp()`;

/**
 * Records, inside an ingest's transaction, that a content's campaign got metrics.
 * With markComputed this orders ingests and roll-ups by the freshness row's lock
 * (PostgreSQL) or the database's write lock (SQLite): the time stamped here is taken
 * once the roll-up that could miss this ingest has committed, so it is never earlier
 * than that roll-up's computed_at.
 */
export async function markMetricsIngested(db: Db, dialect: Dialect, contentId: number): Promise<void> {
  await sql`insert into campaign_stats_freshness (campaign_id, metrics_at)
    select campaign_id, ${clock(dialect)} from contents where id = ${contentId}
    on conflict (campaign_id) do update set metrics_at = excluded.metrics_at`.execute(db);
}

/**
 * Records, as the first statement of a complete roll-up's transaction, that it covers
 * every metric committed before now: one campaign's, or every campaign's (null).
 */
export async function markComputed(db: Db, dialect: Dialect, campaignId: number | null): Promise<void> {
  // SQLite needs a WHERE before an upsert's ON CONFLICT after a SELECT (else it parses it as a join's ON).
  const only = campaignId === null ? sql`where true` : sql`where id = ${campaignId}`;
  await sql`insert into campaign_stats_freshness (campaign_id, computed_at)
    select id, ${clock(dialect)} from campaigns ${only}
    on conflict (campaign_id) do update set computed_at = excluded.computed_at`.execute(db);
}

/** Every column but `day` as a number (PostgreSQL returns sums and averages as strings). */
const numeric = <T extends object>(row: T): T =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, k === 'day' ? v : Number(v)])) as T;

/** A stored time as an ISO string (PostgreSQL's come parsed already; SQLite's are ISO text). */
const iso = (v: string | Date | null | undefined): string | null =>
  v === null || v === undefined ? null : new Date(v).toISOString();

/** Reads the daily roll-ups that the stats.aggregate task writes. */
export class CampaignStatsRepo {
  constructor(private readonly db: Db) {}

  /**
   * A campaign's roll-ups for the inclusive days from..to (YYYY-MM-DD), at most
   * 1,000 campaign days and 5,000 content days; undefined when the campaign does
   * not exist.
   */
  async forCampaign(id: number, from: string, to: string): Promise<CampaignStats | undefined> {
    const exists = await this.db.selectFrom('campaigns').select('id').where('id', '=', id).executeTakeFirst();
    if (!exists) return undefined;
    const days = await sql<CampaignStatsDay>`
      select day, contents, views, likes, comments, shares, watch_time_s, avg_ctr, avg_engagement_rate, avg_performance_score
      from campaign_stats_daily where campaign_id = ${id} and day between ${from} and ${to} order by day limit 1000`.execute(
      this.db,
    );
    const contents = await sql<ContentStatsDay>`
      select content_id, day, samples, views, likes, comments, shares, watch_time_s, ctr, engagement_rate, performance_score
      from content_stats_daily where campaign_id = ${id} and day between ${from} and ${to}
      order by day, content_id limit 5000`.execute(this.db);
    const fresh = await sql<{ metrics_at: string | null; computed_at: string | null }>`
      select metrics_at, computed_at from campaign_stats_freshness where campaign_id = ${id}`.execute(
      this.db,
    );
    const f = fresh.rows[0];
    const metricsAt = iso(f?.metrics_at);
    const computedAt = iso(f?.computed_at);
    return {
      campaign_id: id,
      days: days.rows.map(numeric),
      contents: contents.rows.map(numeric),
      computed_at: computedAt,
      metrics_ingested_at: metricsAt,
      stale: metricsAt !== null && (computedAt === null || metricsAt >= computedAt),
    };
  }
}

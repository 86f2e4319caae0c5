import { sql } from 'kysely';
import type { MetricRow } from './metrics.repo.js';
import type { Db } from './types.js';

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
}

/** Every column but `day` as a number (PostgreSQL returns sums and averages as strings). */
const numeric = <T extends object>(row: T): T =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, k === 'day' ? v : Number(v)])) as T;

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
    return { campaign_id: id, days: days.rows.map(numeric), contents: contents.rows.map(numeric) };
  }
}

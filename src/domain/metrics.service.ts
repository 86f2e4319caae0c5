import type { ContentsRepo } from '../db/contents.repo.js';
import type { MetricRow, MetricsRepo } from '../db/metrics.repo.js';
import type { PerformanceMetric } from '../db/types.js';
import { notFound } from '../errors.js';
import { announcing, type ChangeNotifier } from './changes.js';

export interface MetricInput {
  recorded_at: string;
  views: number;
  likes: number;
  comments: number;
  shares: number;
  watch_time_s?: number;
  /** Click-through rate, 0..1. */
  ctr?: number;
}

/**
 * Largest value a counter (views, likes, comments, shares) may have: a trillion, far above what any
 * platform reports for one item (the most-watched videos have tens of billions of views), and low
 * enough that the daily campaign roll-up of thousands of contents stays a safe integer.
 */
export const MAX_METRIC_COUNT = 1_000_000_000_000;

/** Most rows one ingest call accepts. */
export const MAX_METRICS_BATCH = 1000;

/** (likes + comments + shares) / views; 0 when there are no views. */
export function engagementRate(m: Pick<MetricInput, 'views' | 'likes' | 'comments' | 'shares'>): number {
  return m.views > 0 ? (m.likes + m.comments + m.shares) / m.views : 0;
}

/**
 * The 0–100 performance score, computed on ingest:
 *   50 × min(engagement_rate / 0.10, 1)      engagement: 10 % is excellent
 * + 30 × min(ctr / 0.05, 1)                  click-through: 5 % is excellent
 * + 20 × min(log10(1 + views) / 6, 1)        reach: a million views saturates
 * rounded to two decimals. Documented in docs/api.md.
 */
export function performanceScore(m: MetricInput): number {
  const er = engagementRate(m);
  const score =
    50 * Math.min(er / 0.1, 1) +
    30 * Math.min((m.ctr ?? 0) / 0.05, 1) +
    20 * Math.min(Math.log10(1 + m.views) / 6, 1);
  return Math.round(score * 100) / 100;
}

export class MetricsService {
  constructor(
    private readonly metrics: MetricsRepo,
    private readonly contents: ContentsRepo,
    private readonly changes: ChangeNotifier,
  ) {}

  async ingest(contentId: number, input: MetricInput[]): Promise<{ inserted: number }> {
    const campaignId = await this.requireContent(contentId);
    const rows: MetricRow[] = input.map((m) => ({
      recorded_at: new Date(m.recorded_at).toISOString(),
      views: m.views,
      likes: m.likes,
      comments: m.comments,
      shares: m.shares,
      watch_time_s: m.watch_time_s ?? 0,
      ctr: m.ctr ?? 0,
      engagement_rate: Math.round(engagementRate(m) * 1e6) / 1e6,
      performance_score: performanceScore(m),
    }));
    const inserted = await announcing(
      this.changes,
      () => this.metrics.insertMany(contentId, rows),
      () => [{ entity: 'metrics', contentId, campaignId }],
    );
    return { inserted };
  }

  async series(
    contentId: number,
    opts: { from?: string; to?: string; limit: number },
  ): Promise<PerformanceMetric[]> {
    await this.requireContent(contentId);
    return this.metrics.series(contentId, opts);
  }

  async latest(contentId: number): Promise<PerformanceMetric> {
    await this.requireContent(contentId);
    const m = await this.metrics.latest(contentId);
    if (!m) throw notFound('NOT_FOUND', 'metrics of content', contentId);
    return m;
  }

  /** The content's campaign; throws CONTENT_NOT_FOUND. */
  private async requireContent(id: number): Promise<number> {
    const c = await this.contents.get(id);
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return c.campaign_id;
  }
}

import { markMetricsIngested } from './campaign-stats.repo.js';
import type { Db, Dialect, PerformanceMetric } from './types.js';

export interface MetricRow {
  recorded_at: string;
  views: number;
  likes: number;
  comments: number;
  shares: number;
  watch_time_s: number;
  ctr: number;
  engagement_rate: number;
  performance_score: number;
}

export class MetricsRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
  ) {}

  /**
   * Inserts a batch, moves the content's denormalised latest score forward when the batch
   * is newer, and records when its campaign last got metrics (its roll-ups are stale from then).
   */
  async insertMany(contentId: number, rows: MetricRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    return this.db.transaction().execute(async (trx) => {
      const now = new Date().toISOString();
      await trx
        .insertInto('performance_metrics')
        .values(rows.map((r) => ({ ...r, content_id: contentId, created_at: now, updated_at: now })))
        .execute();
      const newest = rows.reduce((a, b) => (b.recorded_at > a.recorded_at ? b : a));
      await trx
        .updateTable('contents')
        .set({ latest_performance_score: newest.performance_score, latest_recorded_at: newest.recorded_at })
        .where('id', '=', contentId)
        .where((eb) =>
          eb.or([eb('latest_recorded_at', 'is', null), eb('latest_recorded_at', '<=', newest.recorded_at)]),
        )
        .execute();
      await markMetricsIngested(trx, this.dialect, contentId);
      return rows.length;
    });
  }

  /** Time series, oldest first, within [from, to). */
  async series(
    contentId: number,
    opts: { from?: string; to?: string; limit: number },
  ): Promise<PerformanceMetric[]> {
    let q = this.db.selectFrom('performance_metrics').selectAll().where('content_id', '=', contentId);
    if (opts.from !== undefined) q = q.where('recorded_at', '>=', opts.from);
    if (opts.to !== undefined) q = q.where('recorded_at', '<', opts.to);
    return q.orderBy('recorded_at', 'asc').orderBy('id', 'asc').limit(opts.limit).execute();
  }

  async latest(contentId: number): Promise<PerformanceMetric | undefined> {
    return this.db
      .selectFrom('performance_metrics')
      .selectAll()
      .where('content_id', '=', contentId)
      .orderBy('recorded_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
  }
}

/**
 * `stats.aggregate` (low_priority): rolls performance_metrics up per content and
 * day (the day's last snapshot, since platform counters are cumulative, plus the
 * number of samples) and per campaign and day (sums over its contents, averages
 * of the rates). Idempotent: the covered days are recomputed from scratch.
 * Served by GET /api/v1/campaigns/{id}/stats. A run over every day (no from/to)
 * stamps the campaigns' computed_at, which the stats compare with their last
 * ingest to say whether they are stale; ingesting metrics enqueues such a run
 * (src/tasks/stats-refresh.ts).
 */
import { Type } from '@sinclair/typebox';
import { sql } from 'kysely';
import { markComputed } from '../db/campaign-stats.repo.js';
import { defineTask } from '../jobs/registry.js';
import type { TaskDeps } from './deps.js';

const MAX_SAFE_SUM = sql.lit(Number.MAX_SAFE_INTEGER);

const Day = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD (UTC)' });

export const aggregateStatsTask = defineTask({
  name: 'stats.aggregate',
  queue: 'low_priority',
  payload: Type.Object(
    {
      /** Only this campaign (default all). */
      campaign_id: Type.Optional(Type.Integer({ minimum: 1 })),
      /** First and last day to recompute, inclusive (default every day). */
      from: Type.Optional(Day),
      to: Type.Optional(Day),
    },
    { additionalProperties: false },
  ),
  retry: { attempts: 5, backoff: { baseMs: 5000 } },
  softTimeoutMs: 5 * 60_000,
  hardTimeoutMs: 6 * 60_000,
  description: 'rolls performance_metrics up per content, campaign and day',
  async handler(p, ctx: { deps: TaskDeps; progress(v: number): Promise<void> }) {
    const db = ctx.deps.db();
    const day =
      ctx.deps.dialect === 'sqlite'
        ? sql<string>`substr(m.recorded_at, 1, 10)`
        : sql<string>`to_char(m.recorded_at at time zone 'UTC', 'YYYY-MM-DD')`;
    const from = p.from ?? '0000-01-01';
    const to = p.to ?? '9999-12-31';
    const campaign = p.campaign_id ?? null;
    // A counter sum saturates at 2^53 - 1 instead of failing the run: SQLite's sum() raises
    // "integer overflow" past 2^63 and PostgreSQL's bigint column refuses it, and a sum past 2^53
    // is no longer exact in JavaScript anyway. total() (SQLite) and numeric sum() (PostgreSQL) never overflow.
    const safeSum = (col: string) =>
      ctx.deps.dialect === 'sqlite'
        ? sql`cast(min(total(${sql.ref(col)}), ${MAX_SAFE_SUM}) as integer)`
        : sql`least(sum(${sql.ref(col)}), ${MAX_SAFE_SUM})`;
    const result = await db.transaction().execute(async (tx) => {
      const only = (col: string) => (campaign === null ? sql`1 = 1` : sql`${sql.ref(col)} = ${campaign}`);
      // First, so that it takes the lock ingests also take (see markMetricsIngested).
      if (p.from === undefined && p.to === undefined) await markComputed(tx, ctx.deps.dialect, campaign);
      await sql`delete from content_stats_daily where day between ${from} and ${to} and ${only('campaign_id')}`.execute(
        tx,
      );
      const contentRows = await sql`
        insert into content_stats_daily
          (content_id, campaign_id, day, samples, views, likes, comments, shares, watch_time_s, ctr, engagement_rate, performance_score)
        select content_id, campaign_id, day, samples, views, likes, comments, shares, watch_time_s, ctr, engagement_rate, performance_score
        from (
          select m.content_id, c.campaign_id, ${day} as day,
                 count(*) over w_all as samples,
                 row_number() over w_last as rn,
                 m.views, m.likes, m.comments, m.shares, m.watch_time_s, m.ctr, m.engagement_rate,
                 avg(m.performance_score) over w_all as performance_score
          from performance_metrics m join contents c on c.id = m.content_id
          where ${day} between ${from} and ${to} and ${only('c.campaign_id')}
          window w_all as (partition by m.content_id, ${day}),
                 w_last as (partition by m.content_id, ${day} order by m.recorded_at desc, m.id desc)
        ) s
        where rn = 1`.execute(tx);
      await ctx.progress(60);
      await sql`delete from campaign_stats_daily where day between ${from} and ${to}
                and ${only('campaign_id')}`.execute(tx);
      const campaignRows = await sql`
        insert into campaign_stats_daily
          (campaign_id, day, contents, views, likes, comments, shares, watch_time_s, avg_ctr, avg_engagement_rate, avg_performance_score)
        select campaign_id, day, count(*), ${safeSum('views')}, ${safeSum('likes')}, ${safeSum('comments')},
               ${safeSum('shares')}, sum(watch_time_s),
               avg(ctr), avg(engagement_rate), avg(performance_score)
        from content_stats_daily
        where day between ${from} and ${to} and ${only('campaign_id')}
        group by campaign_id, day`.execute(tx);
      await ctx.progress(100);
      return {
        content_days: Number(contentRows.numAffectedRows ?? 0),
        campaign_days: Number(campaignRows.numAffectedRows ?? 0),
      };
    });
    // Readers holding the roll-ups (cached campaign stats) must follow.
    await ctx.deps.changes().changed({ entity: 'campaign_stats', campaignId: campaign });
    return result;
  },
});

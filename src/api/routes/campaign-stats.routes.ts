/**
 * A campaign's daily performance (GET /campaigns/{id}/stats), as the
 * stats.aggregate task rolls it up (src/db/campaign-stats.repo.ts reads it).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { CacheService } from '../../cache/cache.service.js';
import { campaignStatsDeps } from '../../domain-cache/generations.js';
import type { CampaignStatsRepo } from '../../db/campaign-stats.repo.js';
import { notFound } from '../../errors.js';
import { IdParams, Nullable, errorResponses } from '../schemas.js';

export interface CampaignStatsRoutesOptions {
  campaignStats: CampaignStatsRepo;
  /** Caches campaign stats until the next stats.aggregate run or metric ingest (absent: no cache). */
  cache?: CacheService;
}

const Day = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD (UTC)' });

const StatsDay = Type.Object({
  day: Type.String(),
  contents: Type.Integer(),
  views: Type.Number(),
  likes: Type.Number(),
  comments: Type.Number(),
  shares: Type.Number(),
  watch_time_s: Type.Number(),
  avg_ctr: Type.Number(),
  avg_engagement_rate: Type.Number(),
  avg_performance_score: Type.Number(),
});
const ContentDay = Type.Object({
  content_id: Type.Integer(),
  day: Type.String(),
  samples: Type.Integer(),
  views: Type.Number(),
  likes: Type.Number(),
  comments: Type.Number(),
  shares: Type.Number(),
  watch_time_s: Type.Number(),
  ctr: Type.Number(),
  engagement_rate: Type.Number(),
  performance_score: Type.Number(),
});

export const campaignStatsRoutes: FastifyPluginAsyncTypebox<CampaignStatsRoutesOptions> = async (
  app,
  { campaignStats, cache },
) => {
  app.get(
    '/campaigns/:id/stats',
    {
      schema: {
        tags: ['metrics'],
        description:
          'Daily performance of a campaign and of each of its contents, as rolled up by the stats.aggregate task (low_priority). Days without a roll-up are absent. Ingesting metrics schedules a roll-up of the campaign at the end of a STATS_REFRESH_DELAY_MS window (5 s); `computed_at` is when its last complete roll-up ran, `metrics_ingested_at` when it last got metrics, and `stale` is true while the roll-ups miss some ingested metrics.',
        params: IdParams,
        querystring: Type.Object(
          { from: Type.Optional(Day), to: Type.Optional(Day) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            campaign_id: Type.Integer(),
            days: Type.Array(StatsDay),
            contents: Type.Array(ContentDay),
            computed_at: Nullable(Type.String({ format: 'date-time' })),
            metrics_ingested_at: Nullable(Type.String({ format: 'date-time' })),
            stale: Type.Boolean(),
          }),
          ...errorResponses(400, 404),
        },
      },
    },
    async (req) => {
      const id = req.params.id;
      const from = req.query.from ?? '0000-01-01';
      const to = req.query.to ?? '9999-12-31';
      const load = async () => {
        const stats = await campaignStats.forCampaign(id, from, to);
        if (!stats) throw notFound('CAMPAIGN_NOT_FOUND', 'campaign', id);
        return stats;
      };
      return cache
        ? cache.getOrSet('campaign_stats', [id, from, to], load, { deps: campaignStatsDeps(id) })
        : load();
    },
  );
};

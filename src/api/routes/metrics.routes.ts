import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { MAX_METRIC_COUNT, MAX_METRICS_BATCH } from '../../domain/metrics.service.js';
import type { DomainServices } from '../../domain/services.js';
import { DateTime, IdParams, MetricSchema, errorResponses } from '../schemas.js';

const Count = Type.Integer({ minimum: 0, maximum: MAX_METRIC_COUNT });
const MetricBody = Type.Object(
  {
    recorded_at: DateTime,
    views: Count,
    likes: Count,
    comments: Count,
    shares: Count,
    watch_time_s: Type.Optional(Type.Number({ minimum: 0, maximum: 1e12 })),
    ctr: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'click-through rate, 0..1' })),
  },
  { additionalProperties: false },
);

export const metricsRoutes: FastifyPluginAsyncTypebox<Pick<DomainServices, 'metrics'>> = async (
  app,
  { metrics },
) => {
  const tags = ['metrics'];
  app.post(
    '/contents/:id/metrics',
    {
      schema: {
        tags,
        description:
          'Batch ingest. engagement_rate = (likes+comments+shares)/views; performance_score (0–100) = 50·min(engagement/0.10,1) + 30·min(ctr/0.05,1) + 20·min(log10(1+views)/6,1).',
        params: IdParams,
        body: Type.Object(
          { metrics: Type.Array(MetricBody, { minItems: 1, maxItems: MAX_METRICS_BATCH }) },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ inserted: Type.Integer() }), ...errorResponses(400, 404) },
      },
    },
    async (req, reply) => reply.status(201).send(await metrics.ingest(req.params.id, req.body.metrics)),
  );
  app.get(
    '/contents/:id/metrics',
    {
      schema: {
        tags,
        description: 'Time series, oldest first, within [from, to).',
        params: IdParams,
        querystring: Type.Object(
          {
            from: Type.Optional(DateTime),
            to: Type.Optional(DateTime),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(MetricSchema) }), ...errorResponses(400, 404) },
      },
    },
    async (req) => {
      const { from, to, limit } = req.query;
      const items = await metrics.series(req.params.id, {
        from: from === undefined ? undefined : new Date(from).toISOString(),
        to: to === undefined ? undefined : new Date(to).toISOString(),
        limit: limit ?? 100,
      });
      return { items };
    },
  );
  app.get(
    '/contents/:id/metrics/latest',
    { schema: { tags, params: IdParams, response: { 200: MetricSchema, ...errorResponses(404) } } },
    async (req) => metrics.latest(req.params.id),
  );
};

/**
 * The live figures over every process: GET /observability/summary?window=1m|5m|15m|1h and the
 * same snapshot pushed as server-sent events by GET /observability/stream (docs/observability.md).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { type LiveSummary, SUMMARY_WINDOWS, type SummaryWindow } from '../../telemetry/live-summary.js';
import { StringEnum, errorResponses } from '../schemas.js';
import { openEventStream } from '../event-stream.js';

export interface ObservabilityRoutesOptions {
  summary: LiveSummary;
  /** How often the stream sends a snapshot, ms (default 5000). */
  streamEveryMs?: number;
}

const WINDOWS = Object.keys(SUMMARY_WINDOWS) as SummaryWindow[];
const WindowQuery = Type.Object(
  { window: Type.Optional(StringEnum(WINDOWS, 'how far back the figures go (default 5m)')) },
  { additionalProperties: false },
);
/** The summary's fields are documented in docs/observability.md; the object is sent as built. */
const SummaryBody = Type.Object({}, { additionalProperties: true });

export const observabilityRoutes: FastifyPluginAsyncTypebox<ObservabilityRoutesOptions> = async (
  app,
  opts,
) => {
  const tags = ['observability'];
  app.get(
    '/observability/summary',
    {
      schema: {
        tags,
        description:
          'Requests/s, error rate and latency percentiles (overall and per route), job throughput, failures, wait and run percentiles per queue and task, queue depth and oldest wait, cache hit rate per prefix, database P99 and slow queries, and AI spend, over every API and worker process.',
        querystring: WindowQuery,
        response: { 200: SummaryBody, ...errorResponses(400) },
      },
    },
    async (req) => opts.summary.summary(req.query.window ?? '5m'),
  );

  app.get(
    '/observability/stream',
    {
      schema: {
        tags,
        description:
          'Server-sent events: a `summary` event with the same snapshot as /observability/summary every few seconds.',
        querystring: WindowQuery,
        response: errorResponses(400),
      },
    },
    async (req, reply) => {
      const window = req.query.window ?? '5m';
      const res = openEventStream(reply);
      let timer: NodeJS.Timeout | undefined;
      let closed = false;
      const push = async () => {
        try {
          const s = await opts.summary.summary(window);
          if (!closed) res.write(`event: summary\ndata: ${JSON.stringify(s)}\n\n`);
        } catch (err) {
          req.log.warn({ err }, 'observability stream: summary failed');
          if (!closed)
            res.write(`event: error\ndata: ${JSON.stringify({ message: 'summary unavailable' })}\n\n`);
        }
        if (!closed) timer = setTimeout(() => void push(), opts.streamEveryMs ?? 5000);
      };
      req.raw.on('close', () => {
        closed = true;
        clearTimeout(timer);
      });
      await push();
    },
  );
};

/**
 * The live figures over every process: GET /observability/summary?window=1m|5m|15m|1h, the same
 * snapshot pushed as server-sent events by GET /observability/stream, and the figures as time
 * series by GET /observability/series (docs/observability.md).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { validationFailed } from '../../errors.js';
import { type LiveSummary, SUMMARY_WINDOWS, type SummaryWindow } from '../../telemetry/live-summary.js';
import { MAX_SERIES_POINTS } from '../../telemetry/live-series.js';
import { StringEnum, errorResponses } from '../schemas.js';
import { openEventStream } from '../event-stream.js';

export interface ObservabilityRoutesOptions {
  summary: LiveSummary;
  /** How often the stream sends a snapshot, ms (default 5000). */
  streamEveryMs?: number;
  /** The shortest default bucket of a series, ms: the processes' publish interval. */
  minStepMs: number;
}

export const SeriesQuery = Type.Object(
  {
    window: Type.Optional(
      StringEnum(Object.keys(SUMMARY_WINDOWS) as SummaryWindow[], 'how far back the series go (default 1h)'),
    ),
    step_s: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3600,
        description: `bucket width in seconds (default: the window over 60, at least the publish interval); at most ${MAX_SERIES_POINTS} buckets`,
      }),
    ),
  },
  { additionalProperties: false },
);

/** The window and bucket width a series query asks for, ms; a 400 naming `step_s` past MAX_SERIES_POINTS buckets. */
export function seriesRange(
  q: Static<typeof SeriesQuery>,
  minStepMs: number,
): { windowMs: number; stepMs: number } {
  const windowMs = SUMMARY_WINDOWS[q.window ?? '1h'];
  const stepMs =
    q.step_s !== undefined
      ? q.step_s * 1000
      : Math.max(Math.ceil(minStepMs / 1000) * 1000, Math.ceil(windowMs / 60_000) * 1000);
  if (Math.ceil(windowMs / stepMs) > MAX_SERIES_POINTS)
    throw validationFailed(
      'step_s',
      `at most ${MAX_SERIES_POINTS} buckets: at least ${Math.ceil(windowMs / MAX_SERIES_POINTS / 1000)} s for this window`,
    );
  return { windowMs, stepMs };
}

/**
 * Answers with server-sent events: `event` with what `produce` returns, now and then every
 * `everyMs` until the client goes; a failed `produce` is logged and sent as an `error` event.
 */
export async function streamEvents(
  req: FastifyRequest,
  reply: FastifyReply,
  event: string,
  everyMs: number,
  produce: () => Promise<unknown>,
): Promise<void> {
  const res = openEventStream(reply);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const push = async () => {
    try {
      const data = await produce();
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    } catch (err) {
      req.log.warn({ err }, `observability stream: ${event} failed`);
      if (!closed)
        res.write(`event: error\ndata: ${JSON.stringify({ message: `${event} unavailable` })}\n\n`);
    }
    if (!closed) timer = setTimeout(() => void push(), everyMs);
  };
  req.raw.on('close', () => {
    closed = true;
    clearTimeout(timer);
  });
  await push();
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
      await streamEvents(req, reply, 'summary', opts.streamEveryMs ?? 5000, () =>
        opts.summary.summary(window),
      );
    },
  );

  app.get(
    '/observability/series',
    {
      schema: {
        tags,
        description:
          'The live figures over time, in buckets over every process: requests/s, error rate, P50/P90/P99; finished and failed attempts per second, waiting jobs and the oldest wait per queue; cache hit rate; AI spend per provider (arrays aligned with `t`, bucket starts in Unix seconds).',
        querystring: SeriesQuery,
        response: { 200: SummaryBody, ...errorResponses(400) },
      },
    },
    async (req) => {
      const { windowMs, stepMs } = seriesRange(req.query, opts.minStepMs);
      return opts.summary.series(windowMs, stepMs);
    },
  );
};

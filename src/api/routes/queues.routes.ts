/**
 * The queues and the workers: counts by state (GET /queues), pause and resume
 * (admin), and the workers that published a heartbeat (GET /workers).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { type JobAdmin, QUEUE_NAMES } from '../../jobs/types.js';
import { StringEnum, errorResponses } from '../schemas.js';

const QueueParams = Type.Object({ name: StringEnum(QUEUE_NAMES) }, { additionalProperties: false });

const QueueSchema = Type.Object({
  name: StringEnum(QUEUE_NAMES),
  paused: Type.Boolean(),
  counts: Type.Record(Type.String(), Type.Integer()),
  completed_last_minute: Type.Integer(),
  failed_last_minute: Type.Integer(),
  oldest_waiting_age_ms: Type.Number(),
});

const WorkerSchema = Type.Object({
  id: Type.String(),
  host: Type.String(),
  pid: Type.Integer(),
  queues: Type.Array(Type.String()),
  concurrency: Type.Integer(),
  active: Type.Integer(),
  processed: Type.Integer(),
  failed: Type.Integer(),
  started_at: Type.String(),
  last_seen_at: Type.String(),
});

export const queuesRoutes: FastifyPluginAsyncTypebox<{ queue: JobAdmin }> = async (app, { queue }) => {
  app.get(
    '/queues',
    {
      schema: {
        tags: ['queues'],
        description:
          'Per queue: counts by state, paused, completed and failed in the last minute, age of the oldest waiting task.',
        response: {
          200: Type.Object({
            backend: Type.String(),
            keep_last_applies: Type.Union([Type.Literal('at-completion'), Type.Literal('at-cleanup')], {
              description:
                'When JOBS_KEEP_LAST trims finished tasks: as each finishes (BullMQ), or at the next maintenance.cleanup (embedded). Until then the embedded counts include every finished task.',
            }),
            items: Type.Array(QueueSchema),
          }),
        },
      },
    },
    async () => ({
      backend: queue.backend,
      keep_last_applies: queue.keepLastApplies,
      items: (await queue.counts()).map((c) => ({
        name: c.queue,
        paused: c.paused,
        counts: c.counts,
        completed_last_minute: c.completedLastMinute,
        failed_last_minute: c.failedLastMinute,
        oldest_waiting_age_ms: c.oldestWaitingMs,
      })),
    }),
  );

  for (const action of ['pause', 'resume'] as const) {
    app.post(
      `/queues/:name/${action}`,
      {
        config: { auth: 'admin' },
        schema: {
          tags: ['queues'],
          description:
            action === 'pause'
              ? 'Workers stop claiming from the queue (active tasks finish).'
              : 'Workers claim from the queue again.',
          params: QueueParams,
          response: {
            200: Type.Object({ name: Type.String(), paused: Type.Boolean() }),
            ...errorResponses(400, 403),
          },
        },
      },
      async (req) => {
        await queue[action](req.params.name);
        return { name: req.params.name, paused: action === 'pause' };
      },
    );
  }

  app.get(
    '/workers',
    {
      schema: {
        tags: ['workers'],
        description:
          'Workers that published a heartbeat in the last hour; `last_seen_at` tells live from dead.',
        response: { 200: Type.Object({ items: Type.Array(WorkerSchema) }) },
      },
    },
    async () => ({
      items: (await queue.listWorkers()).map((w) => ({
        id: w.id,
        host: w.host,
        pid: w.pid,
        queues: w.queues,
        concurrency: w.concurrency,
        active: w.active,
        processed: w.processed,
        failed: w.failed,
        started_at: new Date(w.startedAt).toISOString(),
        last_seen_at: new Date(w.lastSeenAt).toISOString(),
      })),
    }),
  );
};

/**
 * The task API: tasks (list, get, enqueue by name one at a time or in bulk,
 * retry, cancel) and their progress as server-sent events. Viewers read;
 * editors and admins act; enqueueing by name needs admin. Queues and workers
 * are in queues.routes.ts, campaign statistics in campaign-stats.routes.ts,
 * Bull Board in plugins/bull-board.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { Principal } from '../../auth/api-keys.service.js';
import type { Db } from '../../db/types.js';
import { AppError, notFound } from '../../errors.js';
import { IdempotencyConflictError, InvalidPayloadError } from '../../jobs/errors.js';
import type { EnqueueItem, Jobs } from '../../jobs/jobs.js';
import { listAttempts } from '../../jobs/task-runs.js';
import {
  type EnqueueResult,
  type Job,
  JOB_STATES,
  type JobAdmin,
  QUEUE_NAMES,
  type QueueName,
} from '../../jobs/types.js';
import { Nullable, StringEnum, errorResponses } from '../schemas.js';
import { assertMayActOn } from '../task-roles.js';
import { streamTaskEvents, type TaskEventHub } from '../task-event-streams.js';

export interface TasksRoutesOptions {
  jobs: Jobs;
  db: Db;
  /** The source of live task events and the limits of their streams. */
  events: TaskEventHub;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const TaskRun = Type.Object({
  attempt: Type.Integer(),
  status: Type.String(),
  enqueued_at: Nullable(Type.String()),
  started_at: Nullable(Type.String()),
  finished_at: Nullable(Type.String()),
  wait_ms: Nullable(Type.Number()),
  run_ms: Nullable(Type.Number()),
  worker: Nullable(Type.String()),
  error: Nullable(Type.String()),
});

const TaskSchema = Type.Object({
  id: Type.String(),
  queue: StringEnum(QUEUE_NAMES),
  name: Type.String(),
  state: StringEnum(JOB_STATES),
  priority: Type.Integer(),
  progress: Type.Number(),
  attempts_made: Type.Integer(),
  max_attempts: Type.Integer(),
  stalls: Type.Integer(),
  idempotency_key: Nullable(Type.String()),
  payload: Type.Unknown(),
  result: Type.Unknown(),
  error: Nullable(Type.String()),
  enqueued_at: Type.String(),
  run_at: Type.String(),
  started_at: Nullable(Type.String()),
  finished_at: Nullable(Type.String()),
  runs: Type.Optional(Type.Array(TaskRun)),
});
type TaskView = Static<typeof TaskSchema>;

const view = (j: Job): TaskView => ({
  id: j.id,
  queue: j.queue,
  name: j.name,
  state: j.state,
  priority: j.priority,
  progress: j.progress,
  attempts_made: j.attemptsMade,
  max_attempts: j.maxAttempts,
  stalls: j.stalls,
  idempotency_key: j.idempotencyKey,
  payload: j.payload,
  result: j.result,
  error: j.error,
  enqueued_at: iso(j.enqueuedAt) as string,
  run_at: iso(j.runAt) as string,
  started_at: iso(j.startedAt),
  finished_at: iso(j.finishedAt),
});

export const TaskIdParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
/** Most tasks one POST /tasks/bulk request may enqueue. */
export const MAX_BULK_TASKS = 1000;

/** One task to enqueue by name: the body of POST /tasks, an item of POST /tasks/bulk. */
const EnqueueBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    payload: Type.Optional(Type.Unknown()),
    queue: Type.Optional(StringEnum(QUEUE_NAMES)),
    delay_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86_400_000 })),
    priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
type EnqueueBodyType = Static<typeof EnqueueBody>;

const Enqueued = Type.Object({
  task_id: Type.String(),
  created: Type.Boolean(),
  queue: StringEnum(QUEUE_NAMES),
  state_url: Type.String(),
});
type EnqueuedType = Static<typeof Enqueued>;

/** A task by id, or the API's 404. */
export async function getTaskOr404(queue: JobAdmin, id: string): Promise<Job> {
  const job = await queue.get(id);
  if (!job) throw notFound('TASK_NOT_FOUND', 'task', id);
  return job;
}

export const tasksRoutes: FastifyPluginAsyncTypebox<TasksRoutesOptions> = async (app, opts) => {
  const { jobs, db, events } = opts;
  const queue = jobs.admin;
  const tags = ['tasks'];

  const getTask = (id: string) => getTaskOr404(queue, id);
  /** A task the caller may cancel or retry (404, else 403 below the role that may enqueue it). */
  const actionable = async (id: string, principal: Principal | null) => {
    const job = await getTask(id);
    assertMayActOn(jobs, principal, job.name);
    return job;
  };

  app.get(
    '/tasks',
    {
      schema: {
        tags,
        description: 'Tasks, newest first; filter by state, queue and name.',
        querystring: Type.Object(
          {
            state: Type.Optional(StringEnum(JOB_STATES)),
            queue: Type.Optional(StringEnum(QUEUE_NAMES)),
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
            cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(TaskSchema), next_cursor: Nullable(Type.String()) }),
          ...errorResponses(400),
        },
      },
    },
    async (req) => {
      const page = await queue.list(req.query);
      return { items: page.items.map(view), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/tasks/:id',
    {
      schema: {
        tags,
        description: 'State, progress, attempts, result, error, and the timing of every attempt (task_runs).',
        params: TaskIdParams,
        response: { 200: TaskSchema, ...errorResponses(404) },
      },
    },
    async (req) => {
      const job = await getTask(req.params.id);
      return { ...view(job), runs: await listAttempts(db, queue, job.id) };
    },
  );

  const accepted = () => [...jobs.adminEnqueueable].sort();

  /**
   * The enqueue of one request item, its name and payload checked: `at` prefixes the field in errors
   * ('' for POST /tasks, `tasks.3.` for item 3 of a bulk request, as schema errors name it).
   */
  const checkedItem = (b: EnqueueBodyType, at: string, index?: number): EnqueueItem => {
    const where = index === undefined ? {} : { index };
    if (!jobs.adminEnqueueable.has(b.name) || !jobs.registry.get(b.name)) {
      throw new AppError('TASK_UNKNOWN', `${at}name: ${b.name} cannot be enqueued here`, {
        field: `${at}name`,
        ...where,
        accepted: accepted(),
      });
    }
    const payload = b.payload ?? {};
    try {
      jobs.registry.validate(b.name, payload);
    } catch (err) {
      if (err instanceof InvalidPayloadError)
        throw new AppError('VALIDATION_FAILED', `${at}payload${err.issues[0] ?? ''}`, {
          field: `${at}payload`,
          ...where,
          issues: err.issues,
        });
      throw err;
    }
    return {
      name: b.name,
      payload,
      opts: {
        ...(b.queue ? { queue: b.queue } : {}),
        ...(b.delay_ms !== undefined ? { delayMs: b.delay_ms } : {}),
        ...(b.priority !== undefined ? { priority: b.priority } : {}),
        ...(b.attempts !== undefined ? { attempts: b.attempts } : {}),
        ...(b.idempotency_key ? { idempotencyKey: b.idempotency_key } : {}),
      },
    };
  };
  /** A reused idempotency key naming a task of another name: 409, nothing enqueued. */
  const keyConflict =
    (bulk: boolean) =>
    (err: unknown): never => {
      if (!(err instanceof IdempotencyConflictError)) throw err;
      const field = bulk ? `tasks.${err.index}.idempotency_key` : 'idempotency_key';
      throw new AppError(
        'IDEMPOTENCY_KEY_CONFLICT',
        `${field}: the key already names task ${err.taskId}, a ${err.taskName}`,
        { field, task_id: err.taskId, task_name: err.taskName, ...(bulk ? { index: err.index } : {}) },
      );
    };
  const enqueued = (item: EnqueueItem, r: EnqueueResult): EnqueuedType => ({
    task_id: r.id,
    created: r.created,
    queue: item.opts?.queue ?? (jobs.registry.get(item.name)?.def.queue as QueueName),
    state_url: `/api/v1/tasks/${r.id}`,
  });

  app.post(
    '/tasks',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: `Enqueues a task by name (admins; accepted: ${accepted().join(', ')}). 202 with the task id. An idempotency key that already names a task of the same name returns that task (\`created: false\`); of another name, 409 IDEMPOTENCY_KEY_CONFLICT.`,
        body: EnqueueBody,
        response: { 202: Enqueued, ...errorResponses(400, 403, 409) },
      },
    },
    async (req, reply) => {
      const item = checkedItem(req.body, '');
      const r = await jobs.enqueue(item.name, item.payload, item.opts).catch(keyConflict(false));
      return reply.status(202).send(enqueued(item, r));
    },
  );

  app.post(
    '/tasks/bulk',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          `Enqueues up to ${MAX_BULK_TASKS} tasks in one request. Every item is checked before any is enqueued ` +
          '(an error names the item as `tasks.<index>.<field>` and gives `details.index`), then all are ' +
          'enqueued together (embedded: one transaction; BullMQ: one pipeline per queue). Idempotency keys ' +
          'apply per item (`created: false` for an existing task) and must differ within a request. ' +
          'Counts as one write for the rate limit. 202 with the task ids in request order.',
        body: Type.Object(
          { tasks: Type.Array(EnqueueBody, { minItems: 1, maxItems: MAX_BULK_TASKS }) },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({ items: Type.Array(Enqueued), created: Type.Integer() }),
          ...errorResponses(400, 403, 409, 413),
        },
      },
    },
    async (req, reply) => {
      const keys = new Map<string, number>();
      const items = req.body.tasks.map((b, i) => {
        const key = b.idempotency_key;
        if (key) {
          const first = keys.get(key);
          if (first !== undefined)
            throw new AppError(
              'VALIDATION_FAILED',
              `tasks.${i}.idempotency_key: the same key as tasks.${first}`,
              { field: `tasks.${i}.idempotency_key`, index: i },
            );
          keys.set(key, i);
        }
        return checkedItem(b, `tasks.${i}.`, i);
      });
      const results = await jobs.enqueueBulk(items).catch(keyConflict(true));
      return reply.status(202).send({
        items: items.map((item, i) => enqueued(item, results[i] as EnqueueResult)),
        created: results.filter((r) => r.created).length,
      });
    },
  );

  app.post(
    '/tasks/:id/retry',
    {
      schema: {
        tags,
        description:
          'Redrives a failed, dead or cancelled task with a fresh attempt budget. Needs the role that may enqueue the task (admin for the tasks POST /tasks accepts).',
        params: TaskIdParams,
        response: { 200: TaskSchema, ...errorResponses(403, 404, 409) },
      },
    },
    async (req) => view(await queue.retry((await actionable(req.params.id, req.principal)).id)),
  );

  app.post(
    '/tasks/:id/cancel',
    {
      schema: {
        tags,
        description:
          'Cancels a waiting or delayed task; an active one is asked to stop (its signal aborts). Needs the role that may enqueue the task (admin for the tasks POST /tasks accepts).',
        params: TaskIdParams,
        response: { 200: TaskSchema, ...errorResponses(403, 404, 409) },
      },
    },
    async (req) => view(await queue.cancel((await actionable(req.params.id, req.principal)).id)),
  );

  app.get(
    '/tasks/:id/events',
    {
      schema: {
        tags,
        description:
          'Server-sent events: `progress` (state and progress, with an `id`) whenever they change, then `end` with the final task. Closes when the task ends, or after EVENT_STREAM_LIFETIME_S: reconnect with `Last-Event-ID` to resume. At most EVENT_STREAMS_PER_KEY open streams per key (429 past it).',
        params: TaskIdParams,
        produces: ['text/event-stream'],
      },
    },
    async (req, reply) => {
      const release = events.acquire(req.principal?.keyId ?? 0);
      let job: Job;
      try {
        job = await getTask(req.params.id);
      } catch (err) {
        release();
        throw err;
      }
      reply.hijack();
      streamTaskEvents({
        hub: events,
        response: reply.raw,
        job,
        lastEventId: [req.headers['last-event-id']].flat()[0],
        view,
        release,
        log: req.log,
      });
    },
  );
};

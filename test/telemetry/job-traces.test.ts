/**
 * Traces of jobs an operator handles:
 * - An admin retry keeps a task's trace: the retried attempt continues the trace of the request that
 *   enqueued the task (or links to it, for a task whose attempts link), on the embedded queue and on
 *   BullMQ, whichever way the backend brings the task back: a dead task redriven where it is, one
 *   enqueued again (BullMQ without the redrive shortcut), and one cancelled before it started.
 * - The workers' periodic cleanup is one trace per run, whatever the number of workers scheduling it:
 *   its attempt is the root, the sweep's statements and commands its children, and nothing else
 *   (the scheduling, the queue's polling) starts a trace.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { ClaimedJob } from '../../src/jobs/types.js';
import type { Worker } from '../../src/jobs/worker/worker.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { startWorker } from '../../src/main/worker.js';
import { workerDefaults } from '../../src/main/worker-flags.js';
import { until } from '../jobs/helpers.js';
import { embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';
import { type OtlpReceiver, startOtlpReceiver } from '../support/otlp-receiver.js';

const PRODUCER = 4;
const CONSUMER = 5;

const modes = [
  ...(embeddedEnabled() ? ['embedded' as const] : []),
  ...(redisUrl() ? ['distributed' as const] : []),
];

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(() => receiver.close());

interface Traced {
  system: System;
  app: FastifyInstance;
  admin: string;
  worker?: Worker;
  close(): Promise<void>;
}

async function traced(mode: 'embedded' | 'distributed', env: Record<string, string>): Promise<Traced> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-trace-retry-'));
  const backend: Record<string, string> = { DATABASE_URL: `sqlite:${path.join(dataDir, 'db.sqlite')}` };
  if (mode === 'distributed') {
    const db = await freshDatabaseConfig('postgres');
    if (db.dialect !== 'postgres') throw new Error('expected PostgreSQL');
    backend.DATABASE_URL = db.url;
    backend.REDIS_URL = redisUrl() as string;
    backend.JOBS_REDIS_PREFIX = `ov:q:retry${Math.random().toString(36).slice(2, 8)}`;
  }
  const config = loadConfig({
    DATA_DIR: dataDir,
    ...backend,
    LOG_LEVEL: 'warn',
    // One lost lease makes a task dead.
    JOBS_LEASE_MS: '1000',
    JOBS_MAX_STALLS: '0',
    JOBS_CLEANUP_INTERVAL_S: '0',
    WORKER_METRICS_PORT: '0',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '20',
    ...env,
  });
  const system = await createSystem(config, createLogger(config, path.join(dataDir, 'app.log')));
  const app = await buildApp(appDepsFrom(system));
  const admin = (await system.apiKeys.create('retry admin', 'admin')).key;
  const t: Traced = {
    system,
    app,
    admin,
    async close() {
      await t.worker?.stop({ timeoutMs: 2000 });
      await app.close();
      await system.close();
    },
  };
  return t;
}

async function post(t: Traced, url: string, body?: unknown) {
  const res = await t.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${t.admin}` },
    ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
  return res;
}

/** Enqueues a no-op over the API: its task id, the request's trace, and the enqueue's producer span. */
async function enqueued(t: Traced, body: Record<string, unknown>) {
  const res = await post(t, '/api/v1/tasks', { name: 'diagnostics.noop', ...body });
  const traceId = res.headers['x-trace-id'] as string;
  const producer = await receiver.waitFor((s) => s.traceId === traceId && s.kind === PRODUCER);
  return { id: (res.json() as { task_id: string }).task_id, traceId, producer };
}

/** A worker that claims `id`, notes its start and dies: after its lease the task is dead. */
async function killAttempt(t: Traced, id: string): Promise<void> {
  const leasing = t.system.jobs.leasing;
  const [ghost] = await leasing.claim({ queues: ['default'], max: 1, workerId: 'ghost' });
  expect(ghost?.id).toBe(id);
  const job = ghost as ClaimedJob;
  await leasing.claim({
    started: [{ job, startedAt: job.startedAt }],
    queues: ['default'],
    max: 0,
    workerId: 'ghost',
  });
  await until(
    async () => (await leasing.recoverStalled(), (await t.system.jobs.admin.get(id))?.state === 'dead'),
    15_000,
    `task ${id} dead`,
  );
}

/** Retries `id` over the API and runs it: the retried attempt's consumer span. */
async function retried(t: Traced, id: string) {
  const again = (await post(t, `/api/v1/tasks/${id}/retry`)).json() as { id: string };
  t.worker ??= startWorker(t.system, t.system.jobs, { ...workerDefaults(t.system.config), concurrency: 1 });
  return receiver.waitFor(
    (s) => s.kind === CONSUMER && s.attributes['messaging.message.id'] === again.id,
    15_000,
  );
}

/** A task enqueued over the API dies and is retried: its retried attempt is a child of the enqueue. */
async function deadRetried(t: Traced): Promise<void> {
  const { id, traceId, producer } = await enqueued(t, {});
  await killAttempt(t, id);
  const attempt = await retried(t, id);
  expect(attempt.traceId).toBe(traceId);
  expect(attempt.parentSpanId).toBe(producer.spanId);
  expect(attempt.attributes['omnivibe.job.outcome']).toBe('completed');
}

describe.each(modes)('an admin retry keeps the trace: %s', (mode) => {
  let t: Traced;
  beforeAll(async () => {
    t = await traced(mode, {});
  });
  afterAll(() => t.close());

  it('a dead task retried continues the trace of the request that enqueued it', () => deadRetried(t), 30_000);

  it('a task cancelled before it started links its retried attempt to its enqueue, as its first would have', async () => {
    // A delayed task's attempts link to their producer instead of continuing its trace.
    const { id, traceId, producer } = await enqueued(t, { delay_ms: 60_000 });
    await post(t, `/api/v1/tasks/${id}/cancel`);
    const attempt = await retried(t, id);
    expect(attempt.traceId).not.toBe(traceId);
    expect(attempt.links).toEqual([{ traceId, spanId: producer.spanId }]);
  }, 30_000);
});

// BullMQ without its redrive shortcut takes a dead task out and enqueues it again.
describe.runIf(modes.includes('distributed'))(
  'an admin retry keeps the trace: BullMQ, redrive by enqueuing again',
  () => {
    let t: Traced;
    beforeAll(async () => {
      t = await traced('distributed', { JOBS_SHORTCUT_BULLMQ_REDRIVE: 'off' });
    });
    afterAll(() => t.close());

    it(
      'a dead task enqueued again continues the trace of the request that enqueued it',
      () => deadRetried(t),
      30_000,
    );
  },
);

describe.each(modes)('the periodic cleanup: %s', (mode) => {
  let t: Traced;
  const workers: Worker[] = [];
  beforeAll(async () => {
    t = await traced(mode, { JOBS_CLEANUP_INTERVAL_S: '1' });
  });
  afterAll(async () => {
    for (const w of workers) await w.stop({ timeoutMs: 2000 });
    await t.close();
  });

  it('is one trace per run however many workers schedule it, with its statements under its attempt', async () => {
    const since = receiver.spans.length;
    const cleanups = () =>
      receiver.spans
        .slice(since)
        .filter((s) => s.kind === CONSUMER && s.name === 'process maintenance.cleanup');
    // Two workers each schedule a run every second; one run per interval is enqueued.
    for (let i = 0; i < 2; i++)
      workers.push(
        startWorker(t.system, t.system.jobs, { ...workerDefaults(t.system.config), metricsPort: 0 }),
      );
    const startedAt = Date.now();
    await until(() => cleanups().length >= 3, 15_000, 'three cleanup runs');
    for (const w of workers.splice(0)) await w.stop({ timeoutMs: 2000 });
    const seconds = (Date.now() - startedAt) / 1000;
    // The spans still in the export queue arrive within its 20 ms delay.
    await new Promise((r) => setTimeout(r, 300));
    const runs = cleanups();
    // One per interval (plus the one each worker schedules at its start), not one per worker.
    expect(runs.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(new Set(runs.map((r) => r.attributes['messaging.message.id'])).size).toBe(runs.length);
    for (const run of runs) {
      expect(run.parentSpanId).toBe('');
      expect(run.links).toEqual([]);
      expect(run.attributes['omnivibe.job.outcome']).toBe('completed');
      const spans = receiver.spans.filter((s) => s.traceId === run.traceId);
      // Its statements (and on BullMQ its Redis commands) are the attempt's children.
      expect(spans.some((s) => s.name === 'db delete' && s.parentSpanId === run.spanId)).toBe(true);
      expect(spans.filter((s) => s.parentSpanId === '')).toEqual([run]);
    }
    // Nothing else the workers did started a trace: every root since is a cleanup run.
    const roots = receiver.spans.slice(since).filter((s) => s.parentSpanId === '');
    expect(roots.map((s) => s.name)).toEqual(runs.map(() => 'process maintenance.cleanup'));
  }, 30_000);
});

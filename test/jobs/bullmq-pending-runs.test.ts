/**
 * BullMQ keeps attempt rows in Redis until a worker's recorder moves them to task_runs (see task-runs.ts).
 * `GET /tasks/{id}` reads a task's pending rows on every call: that read must cost what the task's own
 * rows cost, not what every pending row does (during a fast drain, thousands wait at once).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/jobs/backoff.js';
import type { AttemptRow } from '../../src/jobs/task-runs.js';
import type { ClaimedJob, EnqueueRequest, JobQueue } from '../../src/jobs/types.js';
import { redisUrl } from '../support/backends.js';
import { type RunningService, startRedis } from '../support/services.js';
import { makeQueue } from './helpers.js';

describe.skipIf(!redisUrl())('BullMQ pending attempt rows', () => {
  // A server of its own: its byte counters see this file's traffic only.
  let server: RunningService;
  let redis: Redis;
  let q: JobQueue;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
    q = makeQueue('bullmq', { url: server.url });
  });
  afterAll(async () => {
    await q.close();
    redis.disconnect();
    await server.stop();
  });
  const outputBytes = async () =>
    Number(/total_net_output_bytes:(\d+)/.exec(await redis.info('stats'))?.[1] ?? Number.NaN);
  const row = (j: ClaimedJob, at: number): AttemptRow => ({
    task_id: j.id,
    queue: j.queue,
    name: j.name,
    attempt: j.attempt,
    status: 'succeeded',
    enqueued: j.enqueuedAt,
    started: at,
    finished: at + 1,
    worker: 'w1',
    error: null,
  });

  it("reads one task's rows without reading the other tasks' rows", async () => {
    const n = 2000;
    const request: EnqueueRequest = {
      name: 'test.record',
      queue: 'default',
      payload: { tag: 'x' },
      delayMs: 0,
      idempotencyKey: null,
      attempts: 1,
      backoff: DEFAULT_BACKOFF,
      priority: 50,
    };
    await q.enqueueBulk(Array.from({ length: n }, () => request));
    const claimed = await q.claim({ queues: ['default'], max: n, workerId: 'w1' });
    expect(claimed.length).toBe(n);
    const at = Date.now();
    // Settled with their rows; no recorder runs, so every row stays pending.
    await q.claim({
      settle: claimed.map((job) => ({ kind: 'complete', job, result: null, run: row(job, at) })),
      queues: ['default'],
      max: 0,
      workerId: 'w1',
    });
    const first = claimed[0] as ClaimedJob;
    const middle = claimed[n / 2] as ClaimedJob;
    const before = await outputBytes();
    const rows = await q.pendingRuns(middle.id);
    const sent = (await outputBytes()) - before;
    expect(rows).toEqual([row(middle, at)]);
    // Its row and one INFO reply (about 1.5 KB); all 2,000 rows would be about 600 KB.
    expect(sent).toBeLessThan(20_000);
    // An id that is a prefix of others' (d-1 of d-10, d-100...) gets its own rows only.
    expect(await q.pendingRuns(first.id)).toEqual([row(first, at)]);
    expect(await q.pendingRuns('d-0')).toEqual([]);
  });
});

/**
 * The BullMQ adapter completes jobs by running BullMQ's moveToFinished script with arguments built from
 * a template (see completeAndFetch). A job so completed must end exactly as BullMQ's own Job wrapper
 * leaves it, and a job with a retention of its own must keep it.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/jobs/backoff.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
import { BullmqQueue } from '../../src/jobs/bullmq/bullmq-queue.js';
import type { ClaimedJob, EnqueueRequest } from '../../src/jobs/types.js';
import { redisUrl } from '../support/backends.js';
import { silent } from './helpers.js';

const url = redisUrl();

describe.skipIf(!url)('BullMQ completion', () => {
  let redis: Redis;
  let q: BullmqQueue;
  let prefix: string;
  const request = (tag: string): EnqueueRequest => ({
    name: 'test.record',
    queue: 'default',
    payload: { tag },
    delayMs: 0,
    idempotencyKey: null,
    attempts: 2,
    backoff: DEFAULT_BACKOFF,
    priority: 50,
  });
  const claimAll = (max: number) => q.claim({ queues: ['default'], max, workerId: 'w1' });
  const bullId = (j: ClaimedJob) => j.id.slice(2);
  /** A job's hash without the fields that differ between two jobs (times and the payload). */
  const stored = async (j: ClaimedJob) => {
    const h = await redis.hgetall(`${prefix}:default:${bullId(j)}`);
    const { timestamp, processedOn, finishedOn, data, ...rest } = h;
    expect([timestamp, processedOn, finishedOn, data].every((v) => v !== undefined)).toBe(true);
    return rest;
  };

  beforeAll(() => {
    redis = new Redis(url as string);
  });
  afterAll(() => redis.disconnect());
  /** A queue under a fresh key prefix, keeping the last 10 finished jobs. */
  beforeEach(() => {
    prefix = `ov:q:t${Math.random().toString(36).slice(2, 10)}`;
    q = new BullmqQueue({
      url: url as string,
      prefix,
      leaseMs: 5000,
      maxStalls: 3,
      logger: silent,
      keepLast: 10,
      shortcuts: Shortcuts.allOn(),
    });
  });
  afterEach(() => q.close());

  it("leaves a job as BullMQ's own Job wrapper does, and leases the next one in the same call", async () => {
    await q.enqueueBulk([request('a'), request('b'), request('c')]);
    const [a, b] = await claimAll(2);
    if (!a || !b) throw new Error('expected two claimed jobs');
    // `a` completes through the adapter, fetching the next job (`c`) in the same call.
    const next = await q.claim({
      settle: [{ kind: 'complete', job: a, result: { ok: 1 } }],
      queues: ['default'],
      max: 1,
      workerId: 'w1',
    });
    expect(next.map((j) => j.payload)).toEqual([{ tag: 'c' }]);
    // `b` completes through BullMQ's Job wrapper, as its own workers complete jobs.
    const [bull] = q.bullQueues().filter((x) => x.name === 'default');
    const job = await bull?.getJob(bullId(b));
    if (!job) throw new Error('job b not found');
    await job.moveToCompleted({ ok: 1 }, 'w1', false);
    expect(await stored(a)).toEqual(await stored(b));
    expect(await stored(a)).toMatchObject({ returnvalue: '{"ok":1}', atm: '1' });
    const completed = await redis.zrange(`${prefix}:default:completed`, '0', '-1');
    expect(completed.sort()).toEqual([bullId(a), bullId(b)].sort());
    expect(await q.get(a.id)).toMatchObject({ state: 'completed', result: { ok: 1 }, attemptsMade: 1 });
    // Retention is the worker's: at most keepLast (10) completed jobs are kept.
    await q.enqueueBulk(Array.from({ length: 15 }, (_, i) => request(`r${i}`)));
    for (;;) {
      const [j, ...rest] = [...next.splice(0), ...(await claimAll(1))];
      if (!j) break;
      next.push(...rest);
      await q.claim({
        settle: [{ kind: 'complete', job: j, result: null }],
        queues: ['default'],
        max: 0,
        workerId: 'w1',
      });
    }
    expect(await redis.zcard(`${prefix}:default:completed`)).toBe(10);
  });

  it('keeps the retention a job was enqueued with', async () => {
    const [bull] = q.bullQueues().filter((x) => x.name === 'default');
    // A job whose producer asked BullMQ to remove it once completed.
    await bull?.add(
      'test.record',
      { p: { tag: 'own' } },
      { removeOnComplete: true, attempts: 1, priority: 50 },
    );
    const [j] = await claimAll(1);
    if (!j) throw new Error('expected a claimed job');
    await q.claim({
      settle: [{ kind: 'complete', job: j, result: null }],
      queues: ['default'],
      max: 0,
      workerId: 'w1',
    });
    expect(await redis.exists(`${prefix}:default:${bullId(j)}`)).toBe(0);
    expect(await redis.zcard(`${prefix}:default:completed`)).toBe(0);
  });
});

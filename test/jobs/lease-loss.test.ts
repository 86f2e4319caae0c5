/**
 * Lease renewal checks that the lease is still the worker's (BullMQ: the lock's token, as its own
 * extendLock does; embedded: the row's worker). A worker whose lease was taken over aborts the attempt at
 * once (its signal fires), settles nothing and writes no row: whoever holds the job now decides.
 */
import { Type } from '@sinclair/typebox';
import SQLite from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { Jobs } from '../../src/jobs/jobs.js';
import { defineTask, TaskRegistry } from '../../src/jobs/registry.js';
import type { AttemptRow } from '../../src/jobs/task-runs.js';
import type { JobQueue } from '../../src/jobs/types.js';
import { Worker } from '../../src/jobs/worker/worker.js';
import { redisUrl } from '../support/backends.js';
import { makeQueue, queueBackends, silent, sleep, tmpFile, until } from './helpers.js';

describe.each(queueBackends())('lost lease: %s', (backend) => {
  let queue: JobQueue | undefined;
  let worker: Worker | undefined;
  afterEach(async () => {
    await worker?.stop({ timeoutMs: 200 });
    await queue?.close(1000);
  });

  it('aborts the attempt at once when another worker holds its lease, and settles nothing', async () => {
    const file = tmpFile('jobs.db');
    const prefix = `ov:q:lost${Math.random().toString(36).slice(2, 8)}`;
    queue = makeQueue(backend, { file, prefix, leaseMs: 3000 });
    const aborted: Array<{ reason: string; afterMs: number }> = [];
    let takenOverAt = 0;
    const registry = new TaskRegistry([
      defineTask({
        name: 'test.hold',
        queue: 'default',
        payload: Type.Object({}),
        retry: { attempts: 1 },
        handler: (_p, ctx) =>
          new Promise((_resolve, reject) =>
            ctx.signal.addEventListener('abort', () => {
              const reason = ctx.signal.reason as Error;
              aborted.push({ reason: reason.name, afterMs: Date.now() - takenOverAt });
              reject(reason);
            }),
          ),
      }),
    ]);
    const rows: AttemptRow[] = [];
    worker = new Worker({
      queue,
      registry,
      deps: {},
      logger: silent,
      onAttempt: (r) => void rows.push(r),
      leaseMs: 3000,
      heartbeatMs: 100,
      idleWaitMs: 100,
    }).start();
    const { id } = await new Jobs(queue, registry).enqueue('test.hold', {});
    await until(async () => (await queue?.get(id))?.state === 'active', 5000, 'active');
    // Another worker takes the job over (as after an expired lease and a new claim).
    takenOverAt = Date.now();
    if (backend === 'sqlite') {
      const raw = new SQLite(file);
      raw.prepare(`update jobs set worker = 'intruder' where id = ?`).run(Number(id));
      raw.close();
    } else {
      const redis = new Redis(redisUrl() as string);
      await redis.set(`${prefix}:default:${id.slice(2)}:lock`, 'intruder', 'PX', 10_000);
      redis.disconnect();
    }
    await until(() => aborted.length === 1, 3000, 'the attempt to abort');
    expect(aborted[0]?.reason).toBe('LeaseLost');
    // Within a couple of heartbeats (100 ms each), not at the lease's end (3 s) or at settlement.
    expect(aborted[0]?.afterMs).toBeLessThan(1000);
    await sleep(300);
    expect(worker.active).toBe(0);
    // Nothing settled by this worker: the job is still the intruder's, and this worker wrote no row.
    expect((await queue.get(id))?.state).toBe('active');
    expect(rows).toEqual([]);
    expect(await queue.pendingRuns(id)).toEqual([]);
  });
});

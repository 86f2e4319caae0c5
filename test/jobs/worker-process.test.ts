/**
 * Worker processes, started with the real CLI (`omnivibe worker`), killed and
 * stopped by signal: SIGKILL mid-task (the task runs again and completes), no
 * job lost across five SIGKILLs, graceful SIGTERM and the immediate second
 * signal, and for BullMQ a Redis restart (a server of this file's own).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Jobs } from '../../src/jobs/jobs.js';
import type { AttemptRow } from '../../src/jobs/task-runs.js';
import type { JobQueue } from '../../src/jobs/types.js';
import { createTaskRegistry } from '../../src/tasks/index.js';
import { redisUrl } from '../support/backends.js';
import { type RunningService, startRedis } from '../support/services.js';
import { makeQueue, type QueueBackend, queueBackends, sleep, tmpFile, until } from './helpers.js';

const CLI = path.resolve('src/main/cli.ts');
const LEASE_MS = 1500;

interface Setup {
  queue: JobQueue;
  jobs: Jobs;
  env: Record<string, string>;
}

function setup(backend: QueueBackend, redis?: string): Setup {
  const file = tmpFile('jobs.db');
  const prefix = `ov:q:p${Math.random().toString(36).slice(2, 8)}`;
  // The test's queue and the worker process share the file or the Redis prefix.
  const queue = makeQueue(backend, {
    file,
    prefix,
    leaseMs: LEASE_MS,
    maxStalls: 20,
    ...(redis ? { url: redis } : {}),
  });
  const env: Record<string, string> = {
    DATA_DIR: path.dirname(file),
    DATABASE_URL: `sqlite:${path.join(path.dirname(file), 'main.db')}`,
    JOBS_DB_FILE: file,
    JOBS_LEASE_MS: String(LEASE_MS),
    JOBS_MAX_STALLS: '20',
    JOBS_POLL_MS: '20',
    JOBS_CLEANUP_INTERVAL_S: '0',
    JOBS_KEEP_LAST: '100000',
    LOG_LEVEL: 'warn',
    CACHE_MODE: 'off',
  };
  if (backend === 'bullmq') {
    env.REDIS_URL = redis ?? (redisUrl() as string);
    env.JOBS_REDIS_PREFIX = prefix;
  }
  return { queue, jobs: new Jobs(queue, createTaskRegistry()), env };
}

/** The rows of a task already moved to task_runs, as the job store held them (attempt, status, start). */
async function taskRunsOf(
  s: Setup,
  id: string,
): Promise<Array<Pick<AttemptRow, 'attempt' | 'status' | 'started'>>> {
  const main = new SQLite(s.env.DATABASE_URL?.slice('sqlite:'.length) as string, { readonly: true });
  try {
    const rows = main
      .prepare(`select attempt, status, started_at from task_runs where task_id = ? order by id`)
      .all(id) as Array<{ attempt: number; status: AttemptRow['status']; started_at: string | null }>;
    return rows.map((r) => ({
      attempt: r.attempt,
      status: r.status,
      started: r.started_at === null ? null : Date.parse(r.started_at),
    }));
  } catch (err) {
    // The worker has not migrated the main database yet: no table, no rows.
    if (err instanceof Error && /no such table/.test(err.message)) return [];
    throw err;
  } finally {
    main.close();
  }
}

const children = new Set<ChildProcess>();

function startWorker(env: Record<string, string>, args: string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'worker', '--concurrency', '4', '--prefetch', '16', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.on('data', (d: Buffer) => {
    if (process.env.OV_TEST_WORKER_LOG) process.stderr.write(d);
  });
  child.stderr?.on('data', (d: Buffer) => {
    if (process.env.OV_TEST_WORKER_LOG) process.stderr.write(d);
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Every process below `root`, from /proc. */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command (which may hold spaces) start after the last ')': state, then ppid.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch (err) {
      // The process ended between the listing and the read.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, ppid] of parent)
      if (ppid === pid) {
        out.push(child);
        walk(child);
      }
  };
  walk(root);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
};

const exited = (c: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve(c.exitCode);
    c.once('exit', (code) => resolve(code));
  });

afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
});

describe.each(queueBackends())('worker process: %s', (backend) => {
  let s: Setup;
  afterEach(async () => {
    await s?.queue.close(2000);
  });

  const fresh = (redis?: string) => {
    s = setup(backend, redis);
    return s;
  };

  it('a task whose worker is SIGKILLed runs again and completes', async () => {
    fresh();
    const { id } = await s.jobs.enqueue('diagnostics.sleep', { ms: 1500 });
    const w1 = startWorker(s.env);
    await until(async () => (await s.queue.get(id))?.state === 'active', 30_000, 'job active');
    w1.kill('SIGKILL');
    await exited(w1);
    startWorker(s.env);
    await until(async () => (await s.queue.get(id))?.state === 'completed', 30_000, 'job completed');
    const job = await s.queue.get(id);
    expect(job?.stalls).toBe(1);
    // Both attempts have their task_runs row: the lost one written by the worker that recovered it.
    const main = new SQLite(s.env.DATABASE_URL?.slice('sqlite:'.length) as string, { readonly: true });
    type Run = { attempt: number; status: string; error: string | null; started_at: string | null };
    const runs = () =>
      main
        .prepare(
          'select attempt, status, error, started_at from task_runs where task_id = ? order by finished_at',
        )
        .all(id) as Run[];
    try {
      await until(() => runs().length === 2, 10_000, 'two task_runs rows');
      const [lost, rerun] = runs();
      expect(lost).toMatchObject({ attempt: 1, status: 'retrying' });
      expect(lost?.error).toMatch(/^stalled: worker .* stopped renewing its lease/);
      expect(lost?.started_at).not.toBeNull();
      expect(rerun).toMatchObject({ attempt: 1, status: 'succeeded', error: null });
    } finally {
      main.close();
    }
  }, 90_000);

  it.skipIf(backend !== 'sqlite')(
    'embedded: the task of a SIGKILLed worker runs again on another worker within 2 s (its process is gone), long before its 30 s lease ends',
    async () => {
      fresh();
      const env = { ...s.env, JOBS_LEASE_MS: '30000' };
      const { id } = await s.jobs.enqueue('diagnostics.sleep', { ms: 60_000 });
      const w1 = startWorker(env);
      await until(async () => (await s.queue.get(id))?.state === 'active', 30_000, 'job active');
      const w2 = startWorker(env);
      await until(async () => (await s.queue.listWorkers()).length === 2, 30_000, 'the second worker');
      const first = await s.queue.get(id);
      w1.kill('SIGKILL');
      await exited(w1);
      const killedAt = Date.now();
      await until(
        async () => {
          const j = await s.queue.get(id);
          return j?.state === 'active' && j.worker !== first?.worker;
        },
        10_000,
        'the job active on the other worker',
      );
      const backAfterMs = Date.now() - killedAt;
      expect(backAfterMs).toBeLessThan(2000);
      expect((await s.queue.get(id))?.stalls).toBe(1);
      w2.kill('SIGKILL');
      await exited(w2);
    },
    90_000,
  );

  it('a worker SIGKILLed right after its tasks ended loses none of their rows: the next worker moves them to task_runs', async () => {
    fresh();
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await s.jobs.enqueue('diagnostics.noop', {})).id);
    const w1 = startWorker(s.env);
    await until(
      async () => (await s.queue.counts()).every((c) => c.counts.waiting === 0 && c.counts.active === 0),
      30_000,
      'every task completed',
    );
    // At once: rows a recorder buffered in memory for its next batch would die with the process.
    w1.kill('SIGKILL');
    await exited(w1);
    for (const id of ids) expect((await s.queue.get(id))?.state).toBe('completed');
    const w2 = startWorker(s.env);
    const main = new SQLite(s.env.DATABASE_URL?.slice('sqlite:'.length) as string, { readonly: true });
    const rows = () =>
      main.prepare(`select task_id, attempt, status from task_runs`).all() as Array<{
        task_id: string;
        attempt: number;
        status: string;
      }>;
    try {
      await until(
        () => rows().filter((r) => ids.includes(r.task_id)).length >= ids.length,
        15_000,
        'every row in task_runs',
      );
      await sleep(300);
      const got = rows().filter((r) => ids.includes(r.task_id));
      expect(got.map((r) => r.task_id).sort()).toEqual([...ids].sort());
      expect(new Set(got.map((r) => `${r.attempt}:${r.status}`))).toEqual(new Set(['1:succeeded']));
    } finally {
      main.close();
    }
    w2.kill('SIGKILL');
    await exited(w2);
  }, 90_000);

  it.skipIf(backend !== 'bullmq')(
    'BullMQ: the task of a SIGKILLed worker runs again within one lease of the kill, its lost attempt recorded once',
    async () => {
      fresh();
      const leaseMs = 6000;
      const env: Record<string, string> = { ...s.env, JOBS_LEASE_MS: String(leaseMs) };
      const { id } = await s.jobs.enqueue('diagnostics.sleep', { ms: 60_000 });
      const w1 = startWorker(env);
      await until(async () => (await s.queue.get(id))?.state === 'active', 30_000, 'job active');
      const first = await s.queue.get(id);
      const w2 = startWorker(env);
      await until(async () => (await s.queue.listWorkers()).length === 2, 30_000, 'the second worker');
      // Killed just after a renewal: the lock then has its full length left, the worst case.
      const redis = new Redis(env.REDIS_URL as string);
      const lockKey = `${env.JOBS_REDIS_PREFIX}:default:${id.slice(2)}:lock`;
      // A renewal shows as the lock's time to live jumping up between two readings 20 ms apart.
      let prev = Number.POSITIVE_INFINITY;
      await until(
        async () => {
          const ttl = await redis.pttl(lockKey);
          const renewed = ttl > prev + 100;
          prev = ttl;
          return renewed;
        },
        10_000,
        'a fresh renewal',
      );
      w1.kill('SIGKILL');
      const killedAt = Date.now();
      await exited(w1);
      redis.disconnect();
      await until(
        async () => {
          const j = await s.queue.get(id);
          return j?.state === 'active' && (j.startedAt ?? 0) > (first?.startedAt ?? 0);
        },
        3 * leaseMs,
        'the job active again',
      );
      const backAfterMs = Date.now() - killedAt;
      console.info(`BullMQ recovery after SIGKILL: ${backAfterMs} ms (lease ${leaseMs} ms)`);
      expect(backAfterMs).toBeLessThanOrEqual(leaseMs);
      const job = await s.queue.get(id);
      expect(job?.stalls).toBe(1);
      // Moved to task_runs by the live worker within a tenth of a second or so.
      await until(async () => (await taskRunsOf(s, id)).length > 0, 5000, 'the lost attempt in task_runs');
      await sleep(300);
      const lost = await taskRunsOf(s, id);
      expect(lost.map((r) => [r.attempt, r.status, r.started])).toEqual([[1, 'retrying', first?.startedAt]]);
      w2.kill('SIGKILL');
      await exited(w2);
    },
    90_000,
  );

  it('a SIGKILLed worker leaves no sandbox process behind (its launcher and children exit)', async () => {
    fresh();
    const { id } = await s.jobs.enqueue('diagnostics.cpu', { ms: 20_000 });
    const w = startWorker(s.env);
    await until(async () => (await s.queue.get(id))?.state === 'active', 30_000, 'sandboxed job active');
    // The worker's launcher, and the child running the task under it.
    let tree: number[] = [];
    await until(
      () => (tree = descendants(w.pid as number)).length >= 2,
      10_000,
      'launcher and child processes',
    );
    w.kill('SIGKILL');
    await exited(w);
    await until(
      () => tree.every((pid) => !alive(pid)),
      10_000,
      `sandbox processes ${tree.join(', ')} to exit`,
    );
  }, 60_000);

  it('a cancel from another process stops a sandboxed task in the worker process and kills its child', async () => {
    fresh();
    // A busy loop: its child cannot even hear the abort, only a kill ends it.
    const { id } = await s.jobs.enqueue('diagnostics.cpu', { ms: 30_000 });
    const w = startWorker(s.env);
    await until(async () => (await s.queue.get(id))?.state === 'active', 30_000, 'sandboxed job active');
    const taskChild = () =>
      descendants(w.pid as number).find((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('task-child');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
          throw err;
        }
      });
    let child: number | undefined;
    await until(() => (child = taskChild()) !== undefined, 10_000, 'the sandbox child');
    const t0 = Date.now();
    await s.queue.cancel(id);
    await until(async () => (await s.queue.get(id))?.state === 'cancelled', 10_000, 'job cancelled');
    expect(Date.now() - t0).toBeLessThan(5000);
    await until(() => !alive(child as number), 5000, `sandbox child ${child} to be killed`);
    // The worker goes on: the next task runs.
    const next = await s.jobs.enqueue('diagnostics.noop_sandboxed', {});
    await until(
      async () => (await s.queue.get(next.id))?.state === 'completed',
      30_000,
      'next job completed',
    );
  }, 90_000);

  it('loses no job: 2,000 jobs while the worker is SIGKILLed five times', async () => {
    fresh();
    const N = 2000;
    const reqs = Array.from({ length: N }, (_, i) => ({
      name: 'diagnostics.sleep',
      payload: { ms: 2 + (i % 5) },
    }));
    const ids = (await s.jobs.enqueueBulk(reqs)).map((r) => r.id);
    let worker = startWorker(s.env);
    const done = async () => {
      const counts = await s.queue.counts();
      return counts.reduce((n, c) => n + c.counts.completed, 0);
    };
    for (let kill = 0; kill < 5; kill++) {
      const before = await done();
      // Let it make progress, then kill it mid-run.
      await until(async () => (await done()) > before + 50, 60_000, `progress before kill ${kill + 1}`);
      worker.kill('SIGKILL');
      await exited(worker);
      worker = startWorker(s.env);
    }
    await until(async () => (await done()) === N, 120_000, 'all jobs completed');
    let stalls = 0;
    for (const id of ids) {
      const job = await s.queue.get(id);
      expect(job?.state).toBe('completed');
      stalls += job?.stalls ?? 0;
    }
    // A run can repeat only if its job was in flight at a kill: at most 4 slots + 16 prefetched per kill.
    expect(stalls).toBeLessThanOrEqual(5 * (4 + 16));
    worker.kill('SIGTERM');
    expect(await exited(worker)).toBe(0);
  }, 240_000);

  it('SIGTERM lets active tasks finish; past --shutdown-timeout they return to the queue; a second signal stops at once', async () => {
    fresh();
    const quick = await s.jobs.enqueue('diagnostics.sleep', { ms: 800 });
    const w = startWorker(s.env, ['--shutdown-timeout', '5000']);
    await until(async () => (await s.queue.get(quick.id))?.state === 'active', 30_000, 'quick active');
    w.kill('SIGTERM');
    expect(await exited(w)).toBe(0);
    expect((await s.queue.get(quick.id))?.state).toBe('completed');

    const slow = await s.jobs.enqueue('diagnostics.sleep', { ms: 60_000 });
    const w2 = startWorker(s.env, ['--shutdown-timeout', '300']);
    await until(async () => (await s.queue.get(slow.id))?.state === 'active', 30_000, 'slow active');
    const t0 = Date.now();
    w2.kill('SIGTERM');
    expect(await exited(w2)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await s.queue.get(slow.id))?.state).toBe('waiting');

    const w3 = startWorker(s.env, ['--shutdown-timeout', '60000']);
    await until(async () => (await s.queue.get(slow.id))?.state === 'active', 30_000, 'slow active again');
    const t1 = Date.now();
    w3.kill('SIGTERM');
    await sleep(300);
    w3.kill('SIGTERM');
    await exited(w3);
    expect(Date.now() - t1).toBeLessThan(10_000);
    expect((await s.queue.get(slow.id))?.state).toBe('waiting');
  }, 120_000);

  describe.runIf(backend === 'bullmq')('Redis restart', () => {
    let redis: RunningService;
    afterAll(async () => {
      await redis?.stop();
    });

    it('workers resume by themselves after Redis restarts, and nothing enqueued is lost', async () => {
      redis = await startRedis();
      fresh(redis.url);
      const first = await s.jobs.enqueueBulk(
        Array.from({ length: 200 }, () => ({ name: 'diagnostics.noop', payload: {} })),
      );
      startWorker(s.env);
      await until(
        async () => (await s.queue.get(first.at(-1)?.id as string))?.state === 'completed',
        60_000,
        'first batch',
      );
      const restarting = redis.restart?.(1500);
      await sleep(300);
      // Enqueued while Redis is down: the producer holds them until it reconnects.
      const during = s.jobs.enqueueBulk(
        Array.from({ length: 200 }, () => ({ name: 'diagnostics.noop', payload: {} })),
      );
      await restarting;
      const ids = (await during).map((r) => r.id);
      await until(
        async () => {
          for (const id of ids) if ((await s.queue.get(id))?.state !== 'completed') return false;
          return true;
        },
        60_000,
        'jobs enqueued during the outage',
      );
    }, 120_000);
  });
});

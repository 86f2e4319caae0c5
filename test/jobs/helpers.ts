import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import pino from 'pino';
import { BullmqQueue } from '../../src/jobs/bullmq/bullmq-queue.js';
import { Jobs } from '../../src/jobs/jobs.js';
import { defineTask, TaskRegistry } from '../../src/jobs/registry.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
import { SqliteQueue } from '../../src/jobs/sqlite/sqlite-queue.js';
import type { JobQueue, JobState } from '../../src/jobs/types.js';
import { Worker, type WorkerOptions } from '../../src/jobs/worker/worker.js';
import { TASKS } from '../../src/tasks/index.js';
import { embeddedEnabled, redisUrl } from '../support/backends.js';

export type QueueBackend = 'sqlite' | 'bullmq';

export function queueBackends(): QueueBackend[] {
  const out: QueueBackend[] = [];
  if (embeddedEnabled()) out.push('sqlite');
  if (redisUrl()) out.push('bullmq');
  return out;
}

export const silent = pino({ level: 'silent' });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds, at most `timeoutMs`. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export const CHILD_MODULE = path.resolve('src/main/task-child.ts');

export function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-jobs-')), name);
}

export interface QueueOptions {
  leaseMs?: number;
  maxStalls?: number;
  url?: string;
  file?: string;
  prefix?: string;
  /** Fast paths through BullMQ's internals (default: all on). */
  shortcuts?: Shortcuts;
  /** BullMQ: finished jobs kept per queue at completion (default 100,000: all, for the tests' reads). */
  keepLast?: number;
}

/** A fresh queue of `backend`: its own SQLite file, or its own Redis key prefix. */
export function makeQueue(backend: QueueBackend, o: QueueOptions = {}): JobQueue {
  const leaseMs = o.leaseMs ?? 2000;
  const maxStalls = o.maxStalls ?? 3;
  if (backend === 'sqlite')
    return new SqliteQueue({ file: o.file ?? tmpFile('jobs.db'), leaseMs, maxStalls, pollMs: 20 });
  const url = o.url ?? redisUrl();
  if (!url) throw new Error('no Redis in this run');
  return new BullmqQueue({
    url,
    prefix: o.prefix ?? `ov:q:t${Math.random().toString(36).slice(2, 10)}`,
    leaseMs,
    maxStalls,
    logger: silent,
    blockMs: 200,
    keepLast: o.keepLast ?? 100_000,
    shortcuts: o.shortcuts ?? Shortcuts.allOn(),
  });
}

/** Test-only tasks: they record what ran, in order. */
export function testTasks(log: string[]) {
  const Tag = Type.Object(
    { tag: Type.String(), ms: Type.Optional(Type.Integer()) },
    { additionalProperties: false },
  );
  let flaky = 0;
  return [
    ...(
      [
        ['test.record', 'default'],
        ['test.record_high', 'high_priority'],
        ['test.record_low', 'low_priority'],
      ] as const
    ).map(([name, queue]) =>
      defineTask({
        name,
        queue,
        payload: Tag,
        retry: { attempts: 1 },
        async handler(p) {
          log.push(p.tag);
          if (p.ms) await sleep(p.ms);
          return { tag: p.tag };
        },
      }),
    ),
    defineTask({
      name: 'test.fail_once',
      queue: 'default',
      payload: Type.Object({}),
      retry: { attempts: 1 },
      async handler() {
        flaky++;
        if (flaky === 1) throw new Error('first run fails');
        return { runs: flaky };
      },
    }),
  ];
}

export interface Harness {
  queue: JobQueue;
  jobs: Jobs;
  log: string[];
  workers: Worker[];
  worker(o?: Partial<WorkerOptions>): Worker;
  state(id: string): Promise<JobState | undefined>;
  waitState(id: string, state: JobState, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function makeHarness(backend: QueueBackend, o: QueueOptions = {}): Harness {
  const queue = makeQueue(backend, o);
  const log: string[] = [];
  const registry = new TaskRegistry([...TASKS, ...testTasks(log)]);
  const jobs = new Jobs(queue, registry);
  const workers: Worker[] = [];
  const h: Harness = {
    queue,
    jobs,
    log,
    workers,
    worker(w = {}) {
      const worker = new Worker({
        queue,
        registry,
        deps: {},
        logger: silent,
        concurrency: 1,
        leaseMs: o.leaseMs ?? 2000,
        idleWaitMs: 200,
        sandbox: { childModule: CHILD_MODULE, maxTasksPerChild: 100, maxMemoryMb: 512 },
        ...w,
      }).start();
      workers.push(worker);
      return worker;
    },
    async state(id) {
      return (await queue.get(id))?.state;
    },
    async waitState(id, state, timeoutMs = 10_000) {
      await until(
        async () => (await h.state(id)) === state,
        timeoutMs,
        `job ${id} to be ${state} (is ${await h.state(id)})`,
      );
    },
    async close() {
      for (const w of workers) await w.stop({ timeoutMs: 500 });
      await queue.close(2000);
    },
  };
  return h;
}

/**
 * The fast paths through dependencies' internals (src/jobs/shortcuts.ts): with the defaults every one
 * that applies is taken and its fallback never is, so an upgrade that makes one fall back silently fails
 * here; with every switch off the fallbacks give the same jobs, rows and lines. The recorder keeps rows
 * the database refuses and writes them once it takes them again.
 */
import fs from 'node:fs';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/env.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { loadJobsConfig, shortcutVar } from '../../src/config/jobs.js';
import { SHORTCUT_NAMES, type ShortcutName } from '../../src/config/jobs.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
import { Jobs } from '../../src/jobs/jobs.js';
import { TaskRunRecorder } from '../../src/jobs/task-runs.js';
import type { ClaimedJob, Settlement } from '../../src/jobs/types.js';
import { createTaskRegistry } from '../../src/tasks/index.js';
import { createLogger } from '../../src/main/logger.js';
import { freshDatabaseConfig } from '../support/backends.js';
import {
  type Harness,
  makeHarness,
  makeQueue,
  queueBackends,
  silent,
  sleep,
  tmpFile,
  until,
} from './helpers.js';

const allOff = () =>
  new Shortcuts(Object.fromEntries(SHORTCUT_NAMES.map((n) => [n, false])) as Record<ShortcutName, boolean>);

async function mainDb(): Promise<DatabaseHandle> {
  const cfg = await freshDatabaseConfig('sqlite');
  const db = openDatabase(cfg);
  await migrateToLatest(db.db, cfg);
  return db;
}

describe('shortcut switches', () => {
  it('are on by default, each off by its own variable, and a bad value names the variable', () => {
    expect(Object.values(loadJobsConfig({}, '/tmp').shortcuts).every(Boolean)).toBe(true);
    const one = loadJobsConfig({ [shortcutVar('log_lines')]: 'off' }, '/tmp').shortcuts;
    expect(Object.entries(one).filter(([, on]) => !on)).toEqual([['log_lines', false]]);
    expect(shortcutVar('bullmq_complete')).toBe('JOBS_SHORTCUT_BULLMQ_COMPLETE');
    expect(() => loadJobsConfig({ JOBS_SHORTCUT_TASK_RUNS_SQL: 'no' }, '/tmp')).toThrow(ConfigError);
    expect(() => loadJobsConfig({ JOBS_SHORTCUT_TASK_RUNS_SQL: 'no' }, '/tmp')).toThrow(
      /JOBS_SHORTCUT_TASK_RUNS_SQL/,
    );
  });
});

describe.each(queueBackends())('shortcuts: %s', (backend) => {
  let h: Harness | undefined;
  let db: DatabaseHandle | undefined;
  afterEach(async () => {
    await h?.close();
    await db?.close();
    h = undefined;
    db = undefined;
  });

  /** What applies on this backend. */
  const applies: ShortcutName[] = backend === 'bullmq' ? [...SHORTCUT_NAMES] : ['log_lines', 'task_runs_sql'];

  for (const mode of ['defaults', 'all off'] as const) {
    it(`${mode}: every job completes with its row and its two lines; ${mode === 'defaults' ? 'every fast path is taken, no fallback' : 'only the fallbacks'}`, async () => {
      const shortcuts = mode === 'defaults' ? Shortcuts.allOn() : allOff();
      h = makeHarness(backend, { shortcuts, leaseMs: 1000, maxStalls: 0 });
      db = await mainDb();
      if (backend === 'bullmq') {
        // A dead job still listed as waiting (it stalled past the limit) is redriven in place.
        const { id } = await h.jobs.enqueue('test.record', { tag: 'dead' });
        const [ghost] = await h.queue.claim({ queues: ['default'], max: 1, workerId: 'ghost' });
        // The ghost starts it (a job only held, prefetched, counts no stall when its worker dies).
        const start = { job: ghost as ClaimedJob, startedAt: Date.now() };
        await h.queue.claim({ started: [start], queues: ['default'], max: 0, workerId: 'ghost' });
        await until(
          async () => (await h?.queue.recoverStalled(), (await h?.state(id)) === 'dead'),
          10_000,
          'dead',
        );
        // In place; without the shortcut it is enqueued again (a numeric id then comes back as a new one).
        const again = await h.queue.retry(id);
        expect(again.state).toBe('waiting');
        expect(again.id === id).toBe(mode === 'defaults');
      }
      const logFile = tmpFile('worker.log');
      const logger = createLogger({ logLevel: 'info' }, logFile);
      // Batches of 5: 23 attempts (24 on BullMQ) fill full batches (the cached statement) and leave a remainder.
      const taskRuns = new TaskRunRecorder(db.db, h.queue, silent, shortcuts, {
        everyMs: 20,
        idleEveryMs: 1000,
        maxBatch: 5,
      });
      const w = h.worker({ logger, taskRuns, shortcuts, concurrency: 4, prefetch: 8 });
      const ids: string[] = [];
      for (let i = 0; i < 23; i++) ids.push((await h.jobs.enqueue('test.record', { tag: `j${i}` })).id);
      await until(
        async () => h?.log.length === ids.length + (backend === 'bullmq' ? 1 : 0),
        20_000,
        'all jobs',
      );
      for (const id of ids) await h.waitState(id, 'completed');
      await w.stop({ timeoutMs: 1000 });
      const rows = await db.db.selectFrom('task_runs').select(['task_id', 'status', 'attempt']).execute();
      expect(
        rows
          .filter((r) => ids.includes(r.task_id))
          .map((r) => r.status)
          .sort(),
      ).toEqual(ids.map(() => 'succeeded'));
      const read = () =>
        fs
          .readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { msg: string; jobId?: string; status?: string; worker?: string });
      // The logger's destination writes at the end of an event-loop turn.
      await until(
        () => read().filter((l) => l.msg === 'task finished').length >= ids.length,
        5000,
        'the log lines',
      );
      const lines = read();
      for (const msg of ['task started', 'task finished'])
        expect(
          lines
            .filter((l) => l.msg === msg && ids.includes(l.jobId ?? ''))
            .map((l) => l.jobId)
            .sort(),
        ).toEqual([...ids].sort());
      expect(lines.find((l) => l.msg === 'task finished')).toMatchObject({
        status: 'succeeded',
        worker: w.id,
      });
      const report = Object.fromEntries(shortcuts.report().map((r) => [r.name, r]));
      for (const name of applies) {
        const r = report[name];
        if (mode === 'defaults') {
          // Fails when a dependency changed under a fast path: its probe no longer passes, or it fell back.
          expect(r?.unavailable, name).toBeUndefined();
          expect(r?.fallback, name).toBe(0);
          expect(r?.fast, name).toBeGreaterThan(0);
        } else {
          expect(r?.fast, name).toBe(0);
          expect(r?.fallback, name).toBeGreaterThan(0);
        }
      }
    });
  }
});

describe('task_runs recorder', () => {
  it('leaves rows the database refuses in the job store and moves them when it takes them again', async () => {
    const db = await mainDb();
    const queue = makeQueue('sqlite');
    try {
      const rec = new TaskRunRecorder(db.db, queue, pino({ level: 'silent' }), Shortcuts.allOn(), {
        everyMs: 20,
        idleEveryMs: 20,
        maxBatch: 2,
      });
      const jobs = new Jobs(queue, createTaskRegistry());
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await jobs.enqueue('diagnostics.noop', {})).id);
      const claimed = await queue.claim({ queues: ['default'], max: 5, workerId: 'w' });
      const settle = claimed.map((job): Settlement => ({
        kind: 'complete',
        job,
        result: null,
        run: {
          task_id: job.id,
          queue: job.queue,
          name: job.name,
          attempt: job.attempt,
          status: 'succeeded',
          enqueued: job.enqueuedAt,
          started: job.startedAt,
          finished: job.startedAt + 1,
          worker: 'w',
          error: null,
        },
      }));
      await db.db.schema.alterTable('task_runs').renameTo('task_runs_away').execute();
      await queue.claim({ settle, queues: ['default'], max: 0, workerId: 'w' });
      rec.start();
      await sleep(100);
      expect((await queue.takeRuns(10)).length).toBe(5);
      await db.db.schema.alterTable('task_runs_away').renameTo('task_runs').execute();
      await until(
        async () => (await db.db.selectFrom('task_runs').select('task_id').execute()).length === 5,
        5000,
        'the refused rows',
      );
      await rec.close();
      const got = (await db.db.selectFrom('task_runs').select('task_id').execute())
        .map((r) => r.task_id)
        .sort();
      expect(got).toEqual([...ids].sort());
      expect(await queue.takeRuns(10)).toEqual([]);
    } finally {
      await queue.close();
      await db.close();
    }
  });
});

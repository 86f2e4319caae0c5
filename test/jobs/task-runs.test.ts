/**
 * TaskRunRecorder on each database backend: attempt rows stored in the job store with their settlements
 * are moved to task_runs in full batches (the cached statement) and partial ones (close), every column
 * as recorded; a move repeated (a crash between insert and delete, or two movers) inserts nothing twice.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { Jobs } from '../../src/jobs/jobs.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
import {
  type AttemptRow,
  TASK_RUN_COLUMNS,
  TaskRunRecorder,
  toTaskRunRow,
} from '../../src/jobs/task-runs.js';
import type { JobQueue, Settlement } from '../../src/jobs/types.js';
import { createTaskRegistry } from '../../src/tasks/index.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { makeQueue } from './helpers.js';

const silent = pino({ level: 'silent' });

/** Settles `n` claimed jobs, each with an attempt row of its own; returns the rows. */
async function settled(queue: JobQueue, n: number): Promise<AttemptRow[]> {
  const jobs = new Jobs(queue, createTaskRegistry());
  for (let i = 0; i < n; i++) await jobs.enqueue('diagnostics.noop', {});
  const claimed = await queue.claim({ queues: ['default'], max: n, workerId: 'host:1:w' });
  const rows: AttemptRow[] = [];
  const settle = claimed.map((job, i): Settlement => {
    const run: AttemptRow = {
      task_id: job.id,
      queue: job.queue,
      name: job.name,
      attempt: job.attempt,
      status: i % 4 === 3 ? 'failed' : 'succeeded',
      enqueued: job.enqueuedAt,
      started: job.startedAt + i,
      finished: job.startedAt + 2 * i + 1,
      worker: `host:1:w`,
      error: i % 4 === 3 ? `Error: boom ${i}` : null,
    };
    rows.push(run);
    return i % 4 === 3
      ? { kind: 'fail', job, error: run.error as string, outcome: { final: true }, run }
      : { kind: 'complete', job, result: null, run };
  });
  await queue.claim({ settle, queues: ['default'], max: 0, workerId: 'host:1:w' });
  return rows;
}

describe.each(dbBackends())('task_runs recorder: %s', (backend) => {
  let h: ReturnType<typeof openDatabase>;
  beforeAll(async () => {
    const cfg = await freshDatabaseConfig(backend);
    h = openDatabase(cfg);
    await migrateToLatest(h.db, cfg);
  });
  afterAll(async () => {
    await h.close();
  });

  it('moves full batches and the remainder, every column as recorded, and nothing twice', async () => {
    const queue = makeQueue('sqlite');
    try {
      const rows = await settled(queue, 8);
      // The same rows, read by a second mover before the first deleted them: inserted once.
      const again = await queue.takeRuns(100);
      // A long timer: only close() moves, in batches of 3 (two full, the cached statement) and a remainder.
      const rec = new TaskRunRecorder(h.db, queue, silent, Shortcuts.allOn(), {
        everyMs: 60_000,
        idleEveryMs: 60_000,
        maxBatch: 3,
      });
      await rec.close();
      expect(await queue.takeRuns(100)).toEqual([]);
      const twice = new TaskRunRecorder(
        h.db,
        { takeRuns: async (max) => again.splice(0, max), dropRuns: async () => undefined },
        silent,
        Shortcuts.allOn(),
        { everyMs: 60_000, idleEveryMs: 60_000, maxBatch: 3 },
      );
      await twice.move();
      const got = await h.db
        .selectFrom('task_runs')
        .select([...TASK_RUN_COLUMNS])
        .where('worker', '=', 'host:1:w')
        .orderBy('id')
        .execute();
      expect(
        got.map((g) => ({
          ...g,
          attempt: Number(g.attempt),
          wait_ms: Number(g.wait_ms),
          run_ms: Number(g.run_ms),
          enqueued_at: new Date(g.enqueued_at as string | Date).toISOString(),
          started_at: new Date(g.started_at as string | Date).toISOString(),
          finished_at: new Date(g.finished_at as string | Date).toISOString(),
        })),
      ).toEqual(rows.map((r) => toTaskRunRow(r)));
    } finally {
      await queue.close();
    }
  });
});

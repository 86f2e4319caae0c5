/**
 * TaskRunRecorder on each database backend: full batches (the cached statement) and
 * partial ones (flush, close) write every column of every row, in order.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { Shortcuts } from '../../src/jobs/shortcuts.js';
import { TASK_RUN_COLUMNS, TaskRunRecorder, type TaskRunRow } from '../../src/jobs/task-runs.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';

const row = (i: number): TaskRunRow => ({
  task_id: `d-${i}`,
  queue: i % 2 ? 'default' : 'high_priority',
  name: 'diagnostics.noop',
  attempt: 1 + (i % 3),
  status: i % 4 === 3 ? 'failed' : 'succeeded',
  enqueued_at: new Date(1_700_000_000_000 + i).toISOString(),
  started_at: new Date(1_700_000_000_100 + i).toISOString(),
  finished_at: new Date(1_700_000_000_200 + i).toISOString(),
  wait_ms: 100 + i,
  run_ms: 100 + 2 * i,
  worker: `host:1:w${i % 2}`,
  error: i % 4 === 3 ? `Error: boom ${i}` : null,
});

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

  it('writes full batches and the remainder, every column as recorded', async () => {
    // A long timer: only full batches (3 rows) flush on their own; close() writes the rest.
    const rec = new TaskRunRecorder(h.db, pino({ level: 'silent' }), Shortcuts.allOn(), {
      flushMs: 60_000,
      maxBatch: 3,
    });
    const rows = Array.from({ length: 8 }, (_, i) => row(i));
    for (const r of rows) rec.record(r);
    await rec.close();
    const got = await h.db
      .selectFrom('task_runs')
      .select([...TASK_RUN_COLUMNS])
      .orderBy('wait_ms')
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
    ).toEqual(rows);
  });
});

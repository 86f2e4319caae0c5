/**
 * The embedded queue's wait for the jobs file's write lock, against another process that holds the lock
 * the way a busy worker does: short transactions back to back with short gaps between them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import SQLite from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteQueue } from '../../src/jobs/sqlite/sqlite-queue.js';
import { embeddedEnabled } from '../support/backends.js';
import { tmpFile } from './helpers.js';

const require = createRequire(import.meta.url);

/**
 * Holds the write lock `holdMs` per transaction with `gapMs` between transactions, for `forMs`, and takes it
 * back as soon as it is free after a refusal.
 */
const HOG = `
const [SQLite, file, holdMs, gapMs, forMs] = [require(process.argv[1]), process.argv[2], ...process.argv.slice(3).map(Number)];
const db = new SQLite(file);
db.pragma('busy_timeout = 0');
db.exec('create table if not exists hog (x integer)');
const insert = db.prepare('insert into hog (x) values (1)');
const cell = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms) => Atomics.wait(cell, 0, 0, ms);
const until = Date.now() + forMs;
let held = false;
// Like a busy worker, it takes the lock again as soon as it is free (it never sleeps in SQLite's handler).
const begin = () => { for (;;) { try { return db.exec('begin immediate'); } catch (err) { if (err.code !== 'SQLITE_BUSY') throw err; } } };
while (Date.now() < until) {
  begin();
  insert.run();
  if (!held) { held = true; process.stdout.write('holding\\n'); }
  sleep(holdMs);
  db.exec('commit');
  if (gapMs > 0) sleep(gapMs);
}
`;

function startHog(file: string, holdMs: number, gapMs: number, forMs: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['-e', HOG, require.resolve('better-sqlite3'), file, String(holdMs), String(gapMs), String(forMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;

describe.skipIf(!embeddedEnabled())('embedded queue: waiting for the write lock', () => {
  let hog: ChildProcess | undefined;
  let queue: SqliteQueue | undefined;
  afterEach(async () => {
    hog?.kill('SIGKILL');
    hog = undefined;
    await queue?.close();
    queue = undefined;
  });

  it('an enqueue gets the lock between another process`s back-to-back transactions within milliseconds', async () => {
    const file = tmpFile('jobs.db');
    queue = new SqliteQueue({ file, leaseMs: 30_000, maxStalls: 1, pollMs: 50 });
    // Locked 2 ms of every 2.5: trying every 0.2 ms at most, the queue gets in within the first gap after it
    // asks; SQLite's own handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries and mostly misses them.
    hog = await startHog(file, 2, 0.5, 20_000);
    const reader = new SQLite(file, { readonly: true });
    const hogRows = () => reader.prepare<[], { n: number }>('select count(*) as n from hog').get()?.n ?? 0;
    const before = hogRows();
    const took: number[] = [];
    // Enqueues a few ms apart, as an API's (each arrives at its own point of the other process's cycle): at
    // least 150, and on until the other process has committed 100 transactions meanwhile (on a loaded machine
    // it may not run at first).
    const until = Date.now() + 15_000;
    for (let i = 0; (i < 150 || hogRows() - before < 100) && Date.now() < until; i++) {
      await sleep(1 + Math.random() * 2);
      const t = performance.now();
      await queue.enqueue({
        queue: 'default',
        name: 'diagnostics.noop',
        payload: { i },
        priority: 0,
        delayMs: 0,
        attempts: 1,
        backoff: { baseMs: 0, capMs: 0, jitter: false },
        idempotencyKey: null,
      });
      took.push(performance.now() - t);
    }
    took.sort((a, b) => a - b);
    console.log(
      'DIST',
      took.length,
      hogRows() - before,
      [50, 90, 95, 99, 100].map((p) => percentile(took, p).toFixed(2)).join(' '),
    );
    expect(hogRows() - before).toBeGreaterThanOrEqual(100);
    reader.close();
    expect(percentile(took, 95)).toBeLessThan(25);
  });

  it('a write that cannot get the lock within the busy timeout fails with SQLITE_BUSY', async () => {
    const file = tmpFile('jobs.db');
    queue = new SqliteQueue({ file, leaseMs: 30_000, maxStalls: 1, pollMs: 50, busyTimeoutMs: 200 });
    hog = await startHog(file, 2_000, 0, 2_000);
    const t = performance.now();
    await expect(queue.pause('default')).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    const waited = performance.now() - t;
    expect(waited).toBeGreaterThanOrEqual(199);
    expect(waited).toBeLessThan(1_500);
  });
});

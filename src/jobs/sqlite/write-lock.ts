/**
 * Waiting for the jobs file's write lock in steps of a tenth of a millisecond.
 *
 * SQLite's own busy handler (`busy_timeout`) retries after sleeping 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
 * 50, 100 ms. A busy worker commits claims and settlements back to back, so the lock is free only between
 * them: an API process enqueueing one task found it taken try after try and waited 54 ms at P99 (104 ms at
 * most), and a high-priority task then started 55-81 ms late behind a backlog. Trying again every 0.05-0.2
 * ms finds one of those gaps within a few tries (3 ms at P99). A try costs a few microseconds.
 *
 * So the queue's connection runs with `busy_timeout = 0` once it is open, and every write goes through
 * `retryBusy`. Reads need no lock in WAL mode; an open connection's reads are never refused (only a
 * connection that opens while another runs recovery or closes the last one can be), and the queue opens
 * with SQLite's own handler.
 */

const SLEEP = new Int32Array(new SharedArrayBuffer(4));
/** The sleeps between tries, ms; the last repeats. */
const STEPS_MS = [0.05, 0.1, 0.2];

function isBusy(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_BUSY';
}

/**
 * Runs `write` (a `BEGIN IMMEDIATE` transaction or one statement, on a connection with `busy_timeout = 0`)
 * until it is not refused for the lock, for at most `timeoutMs`; then throws the last `SQLITE_BUSY`. A refused
 * write ran nothing, so it is safe to run again. Blocks the thread while it waits, as SQLite's handler does.
 */
export function retryBusy<T>(write: () => T, timeoutMs: number): T {
  let since: number | undefined;
  for (let tries = 0; ; tries++) {
    try {
      return write();
    } catch (err) {
      if (!isBusy(err)) throw err;
      const now = performance.now();
      since ??= now;
      if (now - since >= timeoutMs) throw err;
      Atomics.wait(SLEEP, 0, 0, STEPS_MS[Math.min(tries, STEPS_MS.length - 1)]);
    }
  }
}

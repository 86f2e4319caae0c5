/**
 * The queue contract, run against every backend of this run: the embedded SQLite
 * engine and BullMQ on Redis. Real backends, real worker runtime, real sandbox children.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelayMs, DEFAULT_BACKOFF } from '../../src/jobs/backoff.js';
import type { ClaimedJob, Job, StalledAttempt } from '../../src/jobs/types.js';
import { type Harness, makeHarness, makeQueue, queueBackends, sleep, tmpFile, until } from './helpers.js';

describe('backoff', () => {
  it('doubles from the base, stays within the jitter bounds, and caps at 600 s', () => {
    const opts = { baseMs: 1000, capMs: 600_000, jitter: true };
    for (let n = 1; n <= 30; n++) {
      const raw = Math.min(600_000, 1000 * 2 ** (n - 1));
      expect(backoffDelayMs(n, opts, () => 0)).toBe(Math.round(raw / 2));
      expect(backoffDelayMs(n, opts, () => 1)).toBe(raw);
      const d = backoffDelayMs(n, opts);
      expect(d).toBeGreaterThanOrEqual(raw / 2 - 1);
      expect(d).toBeLessThanOrEqual(raw);
    }
    expect(backoffDelayMs(50, { ...opts, jitter: false })).toBe(600_000);
    expect(backoffDelayMs(3, { ...opts, jitter: false })).toBe(4000);
    // A cap above the ceiling is clamped to it.
    expect(backoffDelayMs(40, { baseMs: 1000, capMs: 10_000_000, jitter: false })).toBe(600_000);
    expect(DEFAULT_BACKOFF.capMs).toBe(600_000);
  });
});

describe.each(queueBackends())('queue contract: %s', (backend) => {
  let h: Harness;
  beforeEach(() => {
    h = makeHarness(backend, { leaseMs: 1500, maxStalls: 1 });
  });
  afterEach(async () => {
    await h.close();
  });
  /** A "worker" made of claims: it notes that it started `job` (as the runtime does with its next claim). */
  const started = (job: ClaimedJob, workerId: string) =>
    h.queue.claim({ started: [{ job, startedAt: job.startedAt }], queues: ['default'], max: 0, workerId });

  it('jobs held ahead read as prefetched, not active, in get, list and counts (BullMQ leases none ahead)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await h.jobs.enqueue('test.record', { tag: `p${i}`, ms: 400 })).id);
    h.worker({ concurrency: 1, prefetch: 8 });
    await until(async () => h.log.length === 1, 10_000, 'the first job running');
    const count = async () => (await h.queue.counts()).find((c) => c.queue === 'default')?.counts;
    // BullMQ leases for free slots only (a lease ahead would save nothing there: see docs/jobs.md).
    const holds = backend === 'sqlite';
    // One slot: one job active, whatever the worker holds (its start is noted within a few ms).
    const want = { active: 1, prefetched: holds ? 3 : 0, waiting: holds ? 0 : 3 };
    await until(async () => (await count())?.active === 1, 2000, 'the running job active');
    expect(await count()).toMatchObject(want);
    expect((await h.queue.list({ state: 'active' })).items.map((j) => j.id)).toEqual([ids[0]]);
    expect((await h.queue.list({ state: 'prefetched' })).items.length).toBe(holds ? 3 : 0);
    expect(await h.state(ids[1] as string)).toBe(holds ? 'prefetched' : 'waiting');
    if (holds) expect((await h.queue.get(ids[1] as string))?.attemptsMade).toBe(0);
    for (const id of ids) await h.waitState(id, 'completed');
    for (const id of ids) expect((await h.queue.pendingRuns(id)).length).toBe(1);
  });

  it('a dead worker held one job it started and one it only prefetched: only the started one lost an attempt', async () => {
    const run = await h.jobs.enqueue('test.record', { tag: 'run' });
    const held = await h.jobs.enqueue('test.record', { tag: 'held' });
    const claimed = await h.queue.claim({ queues: ['default'], max: 2, workerId: 'ghost' });
    expect(claimed.map((j) => j.id)).toEqual([run.id, held.id]);
    await started(claimed[0] as ClaimedJob, 'ghost');
    expect(await h.state(run.id)).toBe('active');
    expect(await h.state(held.id)).toBe('prefetched');
    const counts = (await h.queue.counts()).find((c) => c.queue === 'default')?.counts;
    expect(counts).toMatchObject({ active: 1, prefetched: 1 });
    expect((await h.queue.list({ state: 'prefetched' })).items.map((j) => j.id)).toEqual([held.id]);
    expect((await h.queue.list({ state: 'active' })).items.map((j) => j.id)).toEqual([run.id]);
    expect((await h.queue.get(held.id))?.startedAt).toBeNull();
    const lost: StalledAttempt[] = [];
    await until(
      async () => {
        lost.push(...(await h.queue.recoverStalled()));
        return (await h.state(run.id)) === 'waiting' && (await h.state(held.id)) === 'waiting';
      },
      10_000,
      'both back in their queue',
    );
    expect(lost.map((a) => a.id)).toEqual([run.id]);
    const [lostRow] = await h.queue.pendingRuns(run.id);
    expect(lostRow).toMatchObject({
      status: 'retrying',
      attempt: 1,
      started: (claimed[0] as ClaimedJob).startedAt,
    });
    expect((await h.queue.pendingRuns(held.id)).length).toBe(0);
    expect((await h.queue.get(run.id))?.stalls).toBe(1);
    expect((await h.queue.get(held.id))?.stalls).toBe(0);
  });

  it('with no prefetch room, a completion fetches no job a high_priority job found by the same claim would leave without a slot', async () => {
    const queues = ['high_priority', 'default', 'low_priority'] as const;
    const a = await h.jobs.enqueue('test.record', { tag: 'a' });
    const b = await h.jobs.enqueue('test.record', { tag: 'b' });
    const running = await h.queue.claim({ queues, max: 2, workerId: 'w1' });
    expect(running.map((j) => j.id)).toEqual([a.id, b.id]);
    const high = await h.jobs.enqueue('test.record_high', { tag: 'high' });
    const next = await h.jobs.enqueue('test.record', { tag: 'next' });
    const complete = (job: ClaimedJob) => ({ kind: 'complete' as const, job, result: null });
    // One slot frees (as the worker runtime claims it: free slots plus room): the high job takes it, and
    // the default job must not be leased only to go back.
    const got = await h.queue.claim({
      settle: [complete(running[0] as ClaimedJob)],
      queues,
      max: 1,
      maxNonHigh: 1,
      room: 0,
      workerId: 'w1',
    });
    expect(got.map((j) => j.id)).toEqual([high.id]);
    expect(await h.state(next.id)).toBe('waiting');
    // With room for one held job it may be leased: held, it is prefetched (not active).
    const high2 = await h.jobs.enqueue('test.record_high', { tag: 'high2' });
    const got2 = await h.queue.claim({
      settle: [complete(running[1] as ClaimedJob)],
      queues,
      max: 2,
      maxNonHigh: 2,
      room: 1,
      workerId: 'w1',
    });
    expect(got2.map((j) => j.id).sort()).toEqual([high2.id, next.id].sort());
    expect(await h.state(next.id)).toBe('prefetched');
  });

  it('a three-queue worker draining default work does not claim for its reserved slot alone after each task', async () => {
    // Every claim for a freed slot asks high_priority first; a claim for the reserved slot alone, made
    // after each finished task, found high_priority empty again (one empty lease per task on BullMQ).
    const n = 2000;
    await h.jobs.enqueueBulk(Array.from({ length: n }, () => ({ name: 'diagnostics.noop', payload: {} })));
    const claim = vi.spyOn(h.queue, 'claim');
    h.worker({ concurrency: 4, prefetch: 16 });
    await until(
      async () => (await h.queue.counts()).find((c) => c.queue === 'default')?.counts.completed === n,
      30_000,
      'the drain',
    );
    const reservedOnly = claim.mock.calls.filter(
      ([o]) => o.max > 0 && (o.maxNonHigh ?? o.max) - (o.room ?? 0) === 0,
    );
    expect(reservedOnly.length).toBeLessThan(n / 20);
  });

  it("a wait for every queue wakes on another process's enqueue while a wait watches high_priority only", async () => {
    // A worker whose only free slot is the reserved one waits for high_priority work alone; when a
    // slot frees, it waits for every queue. The second wait must wake on a default enqueue made by
    // another process (here: another queue instance on the same file or prefix) at once, not when
    // its timeout ends.
    const shared = { file: tmpFile('jobs.db'), prefix: `ov:q:t${Math.random().toString(36).slice(2, 10)}` };
    const waiting = makeQueue(backend, shared);
    const producer = makeQueue(backend, shared);
    try {
      const highOnly = new AbortController();
      const first = waiting.waitForWork(['high_priority'], 10_000, highOnly.signal);
      await sleep(50);
      const started = performance.now();
      const second = waiting.waitForWork(
        ['high_priority', 'default', 'low_priority'],
        10_000,
        new AbortController().signal,
      );
      await sleep(50);
      await producer.enqueue({
        name: 'test.record',
        queue: 'default',
        payload: { tag: 'wake' },
        delayMs: 0,
        idempotencyKey: null,
        attempts: 1,
        backoff: DEFAULT_BACKOFF,
        priority: 0,
      });
      await second;
      expect(performance.now() - started).toBeLessThan(2_000);
      highOnly.abort();
      await first;
    } finally {
      await Promise.all([waiting.close(), producer.close()]);
    }
  });

  it('runs high before default before low, FIFO within a queue', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.jobs.enqueue('test.record_low', { tag: `low${i}` })).id);
    for (let i = 0; i < 3; i++) ids.push((await h.jobs.enqueue('test.record', { tag: `def${i}` })).id);
    for (let i = 0; i < 3; i++) ids.push((await h.jobs.enqueue('test.record_high', { tag: `high${i}` })).id);
    h.worker({ concurrency: 1 });
    await until(() => h.log.length === 9, 10_000, 'nine jobs');
    expect(h.log).toEqual(['high0', 'high1', 'high2', 'def0', 'def1', 'def2', 'low0', 'low1', 'low2']);
    // The last handler has returned; its outcome is committed with the worker's next claim (or within 5 ms).
    for (const id of ids) await h.waitState(id, 'completed', 2000);
  });

  it('orders by job priority within a queue (higher first)', async () => {
    await h.jobs.enqueue('test.record', { tag: 'p10' }, { priority: 10 });
    await h.jobs.enqueue('test.record', { tag: 'p90' }, { priority: 90 });
    await h.jobs.enqueue('test.record', { tag: 'p50' });
    h.worker({ concurrency: 1 });
    await until(() => h.log.length === 3);
    expect(h.log).toEqual(['p90', 'p50', 'p10']);
  });

  it('honours delays', async () => {
    const t0 = Date.now();
    const { id } = await h.jobs.enqueue('test.record', { tag: 'late' }, { delayMs: 600 });
    expect(await h.state(id)).toBe('delayed');
    h.worker();
    await h.waitState(id, 'completed');
    const job = (await h.queue.get(id)) as Job;
    expect((job.startedAt ?? 0) - t0).toBeGreaterThanOrEqual(550);
  });

  it('retries transient errors with growing, jittered delays, then succeeds', async () => {
    const { id } = await h.jobs.enqueue(
      'diagnostics.fail',
      { mode: 'transient', times: 3 },
      { attempts: 5, backoff: { baseMs: 100, jitter: true } },
    );
    const starts: number[] = [];
    h.queue.on('active', (j) => {
      if (j.id === id) starts.push(Date.now());
    });
    h.worker();
    await h.waitState(id, 'completed', 15_000);
    const job = (await h.queue.get(id)) as Job;
    expect(job.result).toEqual({ attempt: 4 });
    expect(starts).toHaveLength(4);
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    // delay n is in [base·2^(n-1)/2, base·2^(n-1)] plus scheduling slack.
    gaps.forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual((100 * 2 ** i) / 2 - 5);
      expect(g).toBeLessThan(100 * 2 ** i + 1000);
    });
  });

  it('gives up at once on a permanent error', async () => {
    const { id } = await h.jobs.enqueue('diagnostics.fail', { mode: 'permanent' }, { attempts: 5 });
    h.worker();
    await h.waitState(id, 'failed');
    const job = (await h.queue.get(id)) as Job;
    expect(job.attemptsMade).toBe(1);
    expect(job.error).toMatch(/PermanentError/);
  });

  it('retries after the delay a RetryAfterError asks for', async () => {
    const { id } = await h.jobs.enqueue(
      'diagnostics.fail',
      { mode: 'retry_after', times: 1, retryAfterMs: 400 },
      { attempts: 3 },
    );
    const starts: number[] = [];
    h.queue.on('active', (j) => j.id === id && starts.push(Date.now()));
    h.worker();
    await h.waitState(id, 'completed');
    expect(starts).toHaveLength(2);
    expect((starts[1] as number) - (starts[0] as number)).toBeGreaterThanOrEqual(380);
  });

  it('fails an invalid payload once, without retrying', async () => {
    const req = h.jobs.registry.request('diagnostics.sleep', { ms: 'soon' }, { attempts: 5 });
    const { id } = await h.queue.enqueue(req);
    h.worker();
    await h.waitState(id, 'failed');
    const job = (await h.queue.get(id)) as Job;
    expect(job.attemptsMade).toBe(1);
    expect(job.error).toMatch(/InvalidPayloadError/);
    // The producer-side check refuses it outright.
    await expect(h.jobs.enqueue('diagnostics.sleep', { ms: 'soon' })).rejects.toThrow(/invalid payload/);
  });

  it('enqueues idempotently by key', async () => {
    const a = await h.jobs.enqueue('test.record', { tag: 'once' }, { idempotencyKey: 'audio:42' });
    const b = await h.jobs.enqueue('test.record', { tag: 'once' }, { idempotencyKey: 'audio:42' });
    const [c, d] = await h.jobs.enqueueBulk([
      { name: 'test.record', payload: { tag: 'once' }, opts: { idempotencyKey: 'audio:42' } },
      { name: 'test.record', payload: { tag: 'other' }, opts: { idempotencyKey: 'audio:43' } },
    ]);
    expect(a.created).toBe(true);
    expect(b).toEqual({ id: a.id, created: false });
    expect(c).toEqual({ id: a.id, created: false });
    expect(d?.created).toBe(true);
    h.worker();
    await h.waitState(a.id, 'completed');
    await h.waitState(d?.id as string, 'completed');
    expect(h.log.sort()).toEqual(['once', 'other']);
  });

  it('cancels a waiting job and an active one', async () => {
    const waiting = await h.jobs.enqueue('test.record', { tag: 'never' }, { delayMs: 60_000 });
    const cancelled = await h.queue.cancel(waiting.id);
    expect(cancelled.state).toBe('cancelled');
    expect(await h.state(waiting.id)).toBe('cancelled');
    const active = await h.jobs.enqueue('diagnostics.sleep', { ms: 20_000, steps: 100 });
    h.worker();
    await h.waitState(active.id, 'active');
    const t0 = Date.now();
    await h.queue.cancel(active.id);
    await h.waitState(active.id, 'cancelled', 5000);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(h.queue.cancel(active.id)).rejects.toMatchObject({ code: 'TASK_STATE_CONFLICT' });
    expect(h.log).not.toContain('never');
  });

  it('cancelling an active sandboxed task kills its child, even one that cannot hear the abort', async () => {
    // A busy loop never returns to the child's event loop: only a kill stops it.
    const w = h.worker({ concurrency: 1, queues: ['default'] });
    const { id } = await h.jobs.enqueue('diagnostics.cpu', { ms: 30_000 });
    await h.waitState(id, 'active', 20_000);
    await until(() => w.childPids().length > 0, 10_000, 'the child to start');
    const [pid] = w.childPids();
    const t0 = Date.now();
    await h.queue.cancel(id);
    await h.waitState(id, 'cancelled', 10_000);
    // The heartbeat carries the cancel (≤ 1 s), the child gets ABORT_GRACE_MS to return, then dies.
    expect(Date.now() - t0).toBeLessThan(5000);
    await until(
      () => {
        try {
          process.kill(pid as number, 0);
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'ESRCH';
        }
      },
      5000,
      'the child to be killed',
    );
  });

  it('a cancelled active task never runs again: not when its worker gives it back, nor when its worker died', async () => {
    // Given back (a worker stopping) after the cancel was asked: it ends cancelled.
    const a = await h.jobs.enqueue('test.record', { tag: 'given-back' });
    const [held] = await h.queue.claim({ queues: ['default'], max: 1, workerId: 'stopping-worker' });
    expect(held?.id).toBe(a.id);
    await h.queue.cancel(a.id);
    await h.queue.release(held as ClaimedJob, 'stopping-worker');
    expect(await h.state(a.id)).toBe('cancelled');
    // Its worker died before it heard of the cancel: recovery ends it cancelled, not back in its queue.
    const b = await h.jobs.enqueue('test.record', { tag: 'dead-worker' });
    const [lost] = await h.queue.claim({ queues: ['default'], max: 1, workerId: 'dead-worker' });
    expect(lost?.id).toBe(b.id);
    await started(lost as ClaimedJob, 'dead-worker');
    await h.queue.cancel(b.id);
    const found: StalledAttempt[] = [];
    await until(
      async () => (found.push(...(await h.queue.recoverStalled())), (await h.state(b.id)) === 'cancelled'),
      15_000,
      "the dead worker's cancelled job to end cancelled",
    );
    // Its lost attempt's row says cancelled, not retrying.
    expect(found.map((f) => [f.id, f.cancelled])).toEqual([[b.id, true]]);
    expect((await h.queue.pendingRuns(b.id)).map((r) => [r.attempt, r.status])).toEqual([[1, 'cancelled']]);
    // A new worker finds nothing to run.
    const runs: string[] = [];
    h.queue.on('active', (j) => runs.push(j.id));
    h.worker();
    const c = await h.jobs.enqueue('test.record', { tag: 'after' });
    await h.waitState(c.id, 'completed');
    expect(h.log).toEqual(['after']);
    expect(runs.filter((id) => id === a.id || id === b.id)).toEqual([]);
  });

  it('a cancel made in another process reaches the worker running the task at once, not at its next heartbeat', async () => {
    const shared = { file: tmpFile('jobs.db'), prefix: `ov:q:t${Math.random().toString(36).slice(2, 10)}` };
    const own = makeHarness(backend, { ...shared, leaseMs: 30_000 });
    // Another queue on the same file or prefix: another process (embedded: a datagram; BullMQ: pub/sub).
    const other = makeQueue(backend, { ...shared, leaseMs: 30_000 });
    try {
      // Heartbeats 10 s apart: only the request itself can stop the task in time.
      own.worker({ heartbeatMs: 10_000, leaseMs: 30_000 });
      const { id } = await own.jobs.enqueue('diagnostics.sleep', { ms: 20_000 });
      await own.waitState(id, 'active');
      const t0 = Date.now();
      await other.cancel(id);
      await own.waitState(id, 'cancelled', 5000);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect((await own.queue.pendingRuns(id)).map((r) => r.status)).toEqual(['cancelled']);
    } finally {
      await own.close();
      await other.close();
    }
  });

  it('retention: each queue keeps at most its newest keepLast finished tasks, none past the age limit (BullMQ trims at completion, embedded at the prune)', async () => {
    const own = makeHarness(backend, { keepLast: 2 });
    try {
      own.worker({ concurrency: 1 });
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await own.jobs.enqueue('test.record', { tag: `r${i}` })).id);
      await until(
        async () => (await own.queue.get(ids[4] as string))?.state === 'completed',
        10_000,
        'the last',
      );
      const completed = async () =>
        (await own.queue.counts()).find((c) => c.queue === 'default')?.counts.completed;
      expect(await completed()).toBe(own.queue.keepLastApplies === 'at-completion' ? 2 : 5);
      await own.queue.prune({ keepLast: 2, maxAgeMs: 3_600_000 });
      expect(await completed()).toBe(2);
      const states = await Promise.all(ids.map(async (id) => (await own.queue.get(id))?.state ?? null));
      expect(states).toEqual([null, null, null, 'completed', 'completed']);
      await sleep(20);
      await own.queue.prune({ keepLast: 2, maxAgeMs: 5 });
      expect(await completed()).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('redrives a failed job', async () => {
    const { id } = await h.jobs.enqueue('test.fail_once', {});
    h.worker();
    await h.waitState(id, 'failed');
    await expect(h.queue.retry('d-999999')).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
    const again = await h.queue.retry(id);
    expect(['waiting', 'prefetched', 'active', 'completed']).toContain(again.state);
    await h.waitState(id, 'completed');
    expect((await h.queue.get(id))?.result).toEqual({ runs: 2 });
  });

  it('retries a job cancelled before it started (BullMQ: a numeric id comes back as a new task)', async () => {
    const plain = await h.jobs.enqueue('test.record', { tag: 'second-chance' }, { delayMs: 60_000 });
    const keyed = await h.jobs.enqueue(
      'test.record',
      { tag: 'keyed' },
      { delayMs: 60_000, idempotencyKey: 'k-1' },
    );
    await h.queue.cancel(plain.id);
    await h.queue.cancel(keyed.id);
    const again = await h.queue.retry(plain.id);
    const keyedAgain = await h.queue.retry(keyed.id);
    if (backend === 'sqlite') expect(again.id).toBe(plain.id);
    expect(keyedAgain.id).toBe(keyed.id);
    expect(again).toMatchObject({ name: 'test.record', payload: { tag: 'second-chance' }, state: 'waiting' });
    h.worker();
    await h.waitState(again.id, 'completed');
    await h.waitState(keyed.id, 'completed');
    expect(h.log.sort()).toEqual(['keyed', 'second-chance']);
  });

  it('pauses and resumes a queue', async () => {
    await h.queue.pause('default');
    const { id } = await h.jobs.enqueue('test.record', { tag: 'paused' });
    const high = await h.jobs.enqueue('test.record_high', { tag: 'high' });
    h.worker();
    await h.waitState(high.id, 'completed');
    await sleep(400);
    expect(await h.state(id)).toBe('waiting');
    expect((await h.queue.counts()).find((c) => c.queue === 'default')?.paused).toBe(true);
    await h.queue.resume('default');
    await h.waitState(id, 'completed');
  });

  it('reports progress and emits active, progress, completed and failed events', async () => {
    const seen: string[] = [];
    h.queue.on('active', () => seen.push('active'));
    h.queue.on('progress', (_id, p) => seen.push(`progress:${p}`));
    h.queue.on('completed', () => seen.push('completed'));
    h.queue.on('failed', (_id, _e, final) => seen.push(`failed:${final}`));
    const { id } = await h.jobs.enqueue('diagnostics.sleep', { ms: 100, steps: 4 });
    const bad = await h.jobs.enqueue('diagnostics.fail', { mode: 'permanent' });
    h.worker();
    await h.waitState(id, 'completed');
    await h.waitState(bad.id, 'failed');
    expect(seen).toEqual(
      expect.arrayContaining(['active', 'progress:25', 'progress:100', 'completed', 'failed:true']),
    );
    expect((await h.queue.get(id))?.progress).toBe(100);
    // A completed task reads 100 on both backends, also when it never reported progress.
    const quiet = await h.jobs.enqueue('diagnostics.noop', {});
    await h.waitState(quiet.id, 'completed');
    expect((await h.queue.get(quiet.id))?.progress).toBe(100);
    expect((await h.queue.get(bad.id))?.progress).toBe(0);
  });

  it('soft timeout aborts the handler; the hard timeout ends one that ignores it', async () => {
    const soft = await h.jobs.enqueue('diagnostics.sleep_timeout', { ms: 5000 });
    const hard = await h.jobs.enqueue('diagnostics.sleep_timeout', { ms: 3000, ignoreAbort: true });
    h.worker({ concurrency: 2, queues: ['default'] });
    await h.waitState(soft.id, 'failed');
    expect((await h.queue.get(soft.id))?.error).toMatch(/soft timeout/);
    await h.waitState(hard.id, 'failed');
    expect((await h.queue.get(hard.id))?.error).toMatch(/hard timeout/);
  });

  it('sandboxed: soft timeout in the child, hard timeout kills the child', async () => {
    const w = h.worker({ concurrency: 1, queues: ['default'] });
    const soft = await h.jobs.enqueue('diagnostics.sleep_timeout_sandboxed', { ms: 5000 });
    await h.waitState(soft.id, 'failed', 20_000);
    expect((await h.queue.get(soft.id))?.error).toMatch(/soft timeout/);
    const pidBefore = w.childPids();
    expect(pidBefore).toHaveLength(1);
    const hard = await h.jobs.enqueue('diagnostics.sleep_timeout_sandboxed', { ms: 5000, ignoreAbort: true });
    await h.waitState(hard.id, 'failed', 20_000);
    expect((await h.queue.get(hard.id))?.error).toMatch(/hard timeout/);
    // The killed child is gone; a fresh one replaced it.
    expect(w.childPids()).not.toContain(pidBefore[0]);
  });

  it('recycles a sandbox child after max tasks per child', async () => {
    h.worker({
      concurrency: 1,
      queues: ['default'],
      sandbox: {
        childModule: (await import('./helpers.js')).CHILD_MODULE,
        maxTasksPerChild: 3,
        maxMemoryMb: 512,
      },
    });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++)
      ids.push((await h.jobs.enqueue('diagnostics.noop_sandboxed', { tag: String(i) })).id);
    for (const id of ids) await h.waitState(id, 'completed', 30_000);
    const pids = await Promise.all(
      ids.map(async (id) => ((await h.queue.get(id))?.result as { pid: number }).pid),
    );
    expect(new Set(pids.slice(0, 3)).size).toBe(1);
    expect(new Set(pids.slice(3, 6)).size).toBe(1);
    expect(pids[3]).not.toBe(pids[0]);
    expect(pids[6]).not.toBe(pids[3]);
    expect(pids[0]).not.toBe(process.pid);
  });

  it('keeps a slot for high_priority while long default jobs run', async () => {
    for (let i = 0; i < 4; i++) await h.jobs.enqueue('diagnostics.sleep', { ms: 3000 });
    const w = h.worker({ concurrency: 2 });
    await until(() => w.active === 1, 5000, 'one default job active');
    await sleep(200);
    expect(w.active).toBe(1);
    const t0 = Date.now();
    const high = await h.jobs.enqueue('diagnostics.sleep_high', { ms: 10 });
    await h.waitState(high.id, 'completed', 3000);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('a three-queue worker draining default work does not set up a wait per finished task', async () => {
    // While its reserved slot is its only free one, the worker waits for high_priority work or a slot.
    // That wait used to be a new backend wait per finished task (timers, listeners, a poll), which cost
    // more than a no-op task: the default worker ran at half the speed of `--queues default`.
    const n = 2000;
    await h.jobs.enqueueBulk(Array.from({ length: n }, () => ({ name: 'diagnostics.noop', payload: {} })));
    const waitForWork = vi.spyOn(h.queue, 'waitForWork');
    h.worker({ concurrency: 4, prefetch: 16 });
    await until(
      async () => (await h.queue.counts()).find((c) => c.queue === 'default')?.counts.completed === n,
      30_000,
      'the drain',
    );
    expect(waitForWork.mock.calls.length).toBeLessThan(n / 20);
  });

  it('prefetch never lets a lower-priority job start before a higher one', async () => {
    for (let i = 0; i < 6; i++) await h.jobs.enqueue('test.record_low', { tag: `low${i}`, ms: 150 });
    const w = h.worker({ concurrency: 1, prefetch: 4, queues: ['high_priority', 'low_priority'] });
    await until(() => w.active === 1);
    await h.jobs.enqueue('test.record_high', { tag: 'high0' });
    await h.jobs.enqueue('test.record_high', { tag: 'high1' });
    await until(() => h.log.length === 8, 10_000, 'all jobs');
    // The running low job finishes; then both high jobs run before any of the prefetched low ones.
    expect(h.log.slice(0, 3)).toEqual(['low0', 'high0', 'high1']);
  });

  it('a busy worker never starves the event loop (timers, heartbeats, an API in the same process)', async () => {
    for (let i = 0; i < 4; i++)
      await h.jobs.enqueueBulk(
        Array.from({ length: 2500 }, () => ({
          name: 'diagnostics.noop',
          payload: {},
          opts: { queue: 'low_priority' as const },
        })),
      );
    h.worker({ concurrency: 4, prefetch: 16 });
    const lags: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await sleep(10);
      lags.push(performance.now() - t - 10);
    }
    expect(Math.max(...lags)).toBeLessThan(250);
  });

  it('graceful stop lets active tasks finish; past the timeout they go back to the queue', async () => {
    const quick = await h.jobs.enqueue('diagnostics.sleep', { ms: 300 });
    const w = h.worker({ concurrency: 2, queues: ['default'] });
    await h.waitState(quick.id, 'active');
    await w.stop({ timeoutMs: 5000 });
    expect(await h.state(quick.id)).toBe('completed');

    const slow = await h.jobs.enqueue('diagnostics.sleep', { ms: 10_000 });
    const w2 = h.worker({ concurrency: 2, queues: ['default'] });
    await h.waitState(slow.id, 'active');
    const t0 = Date.now();
    await w2.stop({ timeoutMs: 200 });
    expect(Date.now() - t0).toBeLessThan(3000);
    const job = (await h.queue.get(slow.id)) as Job;
    expect(job.state).toBe('waiting');
    expect(job.attemptsMade).toBe(0);
  });

  it('returns a stalled job to the queue, and marks it dead after too many stalls; dead jobs can be redriven', async () => {
    const { id } = await h.jobs.enqueue('test.record', { tag: 'stall' });
    // A "worker" that claims and then dies (never renews, never settles).
    const [claimed] = await h.queue.claim({ queues: ['default'], max: 1, workerId: 'ghost-1' });
    expect(claimed?.id).toBe(id);
    await started(claimed as ClaimedJob, 'ghost-1');
    const stalled: Array<[string, boolean]> = [];
    h.queue.on('stalled', (jid, dead) => stalled.push([jid, dead]));
    // Each lost attempt is reported once, by the recovery that found it.
    const lost: StalledAttempt[] = [];
    // A second ghost claims the job the moment it is back, before the recovery's report is read: the
    // first lost attempt is still recorded with its own start, not the second's.
    let second: ClaimedJob | undefined;
    await until(
      async () => {
        lost.push(...(await h.queue.recoverStalled()));
        [second] = await h.queue.claim({ queues: ['default'], max: 1, workerId: 'ghost-2' });
        if (second) await started(second, 'ghost-2');
        return second !== undefined;
      },
      10_000,
      'first stall',
    );
    expect(second?.id).toBe(id);
    expect(second?.attempt).toBe(1);
    await until(
      async () => (lost.push(...(await h.queue.recoverStalled())), (await h.state(id)) === 'dead'),
      10_000,
      'dead',
    );
    expect(lost.map((a) => [a.id, a.name, a.queue, a.attempt, a.dead, a.cancelled])).toEqual([
      [id, 'test.record', 'default', 1, false, false],
      [id, 'test.record', 'default', 1, true, false],
    ]);
    expect(lost.map((a) => a.startedAt)).toEqual([claimed?.startedAt, second?.startedAt]);
    // Their rows were stored with the recovery: one per lost attempt, each with its own start.
    const rows = await h.queue.pendingRuns(id);
    expect(rows.map((r) => [r.attempt, r.status, r.started])).toEqual([
      [1, 'retrying', claimed?.startedAt],
      [1, 'failed', second?.startedAt],
    ]);
    for (const r of rows) {
      expect(r.error).toMatch(/^stalled: worker /);
      expect(r.finished).toBeGreaterThanOrEqual(r.started as number);
    }
    if (backend === 'sqlite') {
      expect(lost.map((a) => a.worker)).toEqual(['ghost-1', 'ghost-2']);
      expect(stalled).toEqual([
        [id, false],
        [id, true],
      ]);
    }
    await h.queue.retry(id);
    h.worker();
    await h.waitState(id, 'completed');
    expect(h.log).toEqual(['stall']);
  });

  it('a finished task has its attempt rows in the job store already, one per attempt, before any recorder moved them', async () => {
    const ok = await h.jobs.enqueue('test.record', { tag: 'ok' });
    const flaky = await h.jobs.enqueue(
      'test.fail_once',
      {},
      { attempts: 2, backoff: { baseMs: 1, jitter: false } },
    );
    h.worker({ concurrency: 2 });
    const ended = new Map<string, number>();
    const seen = (id: string) =>
      until(
        async () => {
          const job = await h.queue.get(id);
          if (job?.state !== 'completed') return false;
          // Read right after the state: the rows are there with it.
          ended.set(id, (await h.queue.pendingRuns(id)).length);
          return true;
        },
        10_000,
        `${id} completed`,
      );
    await seen(ok.id);
    await seen(flaky.id);
    expect(Object.fromEntries(ended)).toEqual({ [ok.id]: 1, [flaky.id]: 2 });
    const rows = await h.queue.pendingRuns(flaky.id);
    expect(rows.map((r) => [r.attempt, r.status, r.worker !== null])).toEqual([
      [1, 'retrying', true],
      [2, 'succeeded', true],
    ]);
    expect(rows[0]?.error).toMatch(/first run fails/);
    for (const r of rows) expect(r.finished).toBeGreaterThanOrEqual(r.started as number);
    // A recorder takes them and deletes them once moved.
    const taken = await h.queue.takeRuns(100);
    expect(taken.map((t) => t.row.task_id).sort()).toEqual([ok.id, flaky.id, flaky.id].sort());
    await h.queue.dropRuns(taken);
    expect(await h.queue.takeRuns(100)).toEqual([]);
    expect(await h.queue.pendingRuns(flaky.id)).toEqual([]);
  });

  it('lists, pages, counts and gets jobs', async () => {
    for (let i = 0; i < 5; i++) await h.jobs.enqueue('test.record', { tag: `t${i}` });
    await h.jobs.enqueue('test.record_low', { tag: 'low' });
    const p1 = await h.queue.list({ queue: 'default', limit: 2 });
    expect(p1.items).toHaveLength(2);
    expect(p1.next_cursor).not.toBeNull();
    const p2 = await h.queue.list({ queue: 'default', limit: 2, cursor: p1.next_cursor as string });
    const p3 = await h.queue.list({ queue: 'default', limit: 2, cursor: p2.next_cursor as string });
    const all = [...p1.items, ...p2.items, ...p3.items];
    expect(new Set(all.map((j) => j.id)).size).toBe(5);
    expect(p3.next_cursor).toBeNull();
    expect((await h.queue.list({ name: 'test.record_low' })).items.map((j) => j.payload)).toEqual([
      { tag: 'low' },
    ]);
    expect((await h.queue.list({ state: 'completed' })).items).toHaveLength(0);
    const counts = await h.queue.counts();
    expect(counts.find((c) => c.queue === 'default')?.counts.waiting).toBe(5);
    expect(counts.find((c) => c.queue === 'low_priority')?.counts.waiting).toBe(1);
    expect(counts.find((c) => c.queue === 'default')?.oldestWaitingMs).toBeGreaterThanOrEqual(0);
    h.worker();
    await until(() => h.log.length === 6);
    await until(async () => (await h.queue.list({ state: 'completed' })).items.length === 6);
    const after = await h.queue.counts();
    expect(after.find((c) => c.queue === 'default')?.completedLastMinute).toBe(5);
    expect(await h.queue.get('d-nope')).toBeNull();
    const workers = await h.queue.listWorkers();
    expect(workers[0]).toMatchObject({ pid: process.pid, concurrency: 1 });
  });
});

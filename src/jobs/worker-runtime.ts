/**
 * The worker runtime, the same for every backend:
 * - `concurrency` slots (default 4); when the worker serves `high_priority` and
 *   has 2+ slots, one slot is reserved for it, so long renders never starve narration;
 * - claims in strict priority order, batched (one claim fills every free slot);
 *   `prefetch` extra jobs may be held, but every round merges them with fresh
 *   claims in priority order and the surplus goes back, so prefetch never lets a
 *   lower-priority job start before a higher one that was waiting when a slot freed;
 * - validates the payload, runs the handler (in-process, or in a recycled child
 *   for sandboxed tasks), soft timeout via AbortSignal, hard timeout;
 * - retries with capped jittered back-off, permanent and retry-after errors;
 * - one `task_runs` row and one structured log line at start and finish of each attempt;
 * - heartbeats renew leases and publish the worker record; stalled jobs of dead
 *   workers are recovered; `stop()` is graceful, `stop({ now: true })` immediate.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Logger } from 'pino';
import { backoffDelayMs, MAX_BACKOFF_MS } from './backoff.js';
import {
  describeError,
  type ErrorInfo,
  TaskCancelledError,
  TaskTimeoutError,
  UnknownTaskError,
} from './errors.js';
import type { TaskRegistry } from './registry.js';
import {
  type AbortSource,
  SandboxPool,
  type SandboxPoolOptions,
  SandboxTaskError,
} from './sandbox/sandbox-pool.js';
import { TaskLines } from './task-lines.js';
import type { TaskRunSink } from './task-runs.js';
import {
  type ClaimedJob,
  type JobQueue,
  type QueueName,
  QUEUE_PRIORITY,
  rankQueues,
  type Settlement,
  type WorkerRecord,
} from './types.js';

export interface WorkerOptions {
  queue: JobQueue;
  registry: TaskRegistry;
  /** Handed to in-process handlers as ctx.deps. */
  deps: unknown;
  logger: Logger;
  taskRuns?: TaskRunSink;
  /** Queues served (default all three). */
  queues?: readonly QueueName[];
  /** Task slots (default 4). */
  concurrency?: number;
  /** Extra claimed jobs held beyond the free slots (default 0). */
  prefetch?: number;
  /** Lease length, ms; heartbeats renew it (default 30 000). */
  leaseMs?: number;
  /** Heartbeat period, ms (default min(1000, leaseMs / 3)). */
  heartbeatMs?: number;
  /** How long an idle worker waits before looking again without a wake-up, ms (default 1000). */
  idleWaitMs?: number;
  /** Sandbox children; required when a sandboxed task is registered. */
  sandbox?: Pick<SandboxPoolOptions, 'childModule' | 'maxTasksPerChild' | 'maxMemoryMb' | 'env'>;
  /** Schedules maintenance.cleanup this often, ms (0 = never). */
  cleanupIntervalMs?: number;
  id?: string;
  /** Injectable randomness for back-off jitter (tests). */
  random?: () => number;
  now?: () => number;
}

export interface StopOptions {
  /** Time to let active tasks finish before they are aborted and returned, ms (default 30 000). */
  timeoutMs?: number;
  /** Abort active tasks at once and return their jobs to the queue. */
  now?: boolean;
}

interface Running {
  job: ClaimedJob;
  ac: LazyAbort;
  done: Promise<void>;
}

/**
 * An AbortController made on first use of its signal: most attempts finish without anyone
 * looking at it, and one controller per job is measurable at thousands of jobs per second.
 * An abort before the signal exists is remembered and applied when it is made.
 */
class LazyAbort implements AbortSource {
  private ac: AbortController | undefined;
  private listeners: Array<(reason: unknown) => void> | undefined;
  aborted = false;
  reason: unknown;

  /** For the sandbox pool: hears the abort without making a signal. */
  subscribe(listener: (reason: unknown) => void): () => void {
    (this.listeners ??= []).push(listener);
    return () => {
      const i = this.listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.listeners?.splice(i, 1);
    };
  }

  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.aborted) this.ac.abort(this.reason);
    }
    return this.ac.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.ac?.abort(reason);
    for (const l of this.listeners?.splice(0) ?? []) l(reason);
  }
}

/** ISO strings for epoch ms, remembering the last one: consecutive attempts mostly share their millisecond. */
class IsoClock {
  private ms = Number.NaN;
  private text = '';

  iso(ms: number): string {
    if (ms !== this.ms) {
      this.ms = ms;
      this.text = new Date(ms).toISOString();
    }
    return this.text;
  }
}

const RESOLVED = Promise.resolve();

/**
 * `sorted` (in claim order) with `extra` inserted in claim order: the same array as a stable sort of
 * both (an inserted job goes after the jobs it ties with), with a binary search per inserted job.
 */
function withRanked(sorted: readonly ClaimedJob[], extra: ClaimedJob[]): ClaimedJob[] {
  const out = sorted.slice();
  for (const job of extra.length > 1 ? extra.sort(byRank) : extra) {
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byRank(out[mid] as ClaimedJob, job) <= 0) lo = mid + 1;
      else hi = mid;
    }
    out.splice(lo, 0, job);
  }
  return out;
}

/** Claim order: queue rank, then job priority, then FIFO (negative: `a` runs first). */
const byRank = (a: ClaimedJob, b: ClaimedJob) =>
  QUEUE_PRIORITY[b.queue] - QUEUE_PRIORITY[a.queue] || b.priority - a.priority || a.enqueuedAt - b.enqueuedAt;

export class Worker {
  readonly id: string;
  readonly queues: QueueName[];
  readonly concurrency: number;
  private readonly prefetch: number;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly now: () => number;
  private readonly running = new Map<string, Running>();
  /** Running jobs not from high_priority (the reserved slot's bookkeeping, without a scan per loop). */
  private runningNonHigh = 0;
  /** task_runs timestamps: enqueue times repeat within a bulk, start and finish within a millisecond. */
  private readonly enqueuedIso = new IsoClock();
  private readonly runIso = new IsoClock();
  /** Prefetched jobs, always in claim order (byRank). */
  private buffer: ClaimedJob[] = [];
  /** Finished jobs whose outcome is committed with the next claim (one round trip for both). */
  private pendingSettle: Settlement[] = [];
  private flushChain: Promise<void> = Promise.resolve();
  private readonly settled = new Map<string, () => void>();
  private claimVersion: string | undefined;
  private claimedAt = 0;
  /** The worst-ranked job of the last claim (none: nothing else was ready). */
  private claimFloor: ClaimedJob | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Counts freed slots, so the loop notices one that freed while it was busy claiming. */
  private slotEpoch = 0;
  /** The loop waiting for a freed slot or the end of a claim round (one promise, not event listeners, per wait). */
  private loopWaiter: (() => void) | undefined;
  /** Claims the loop may keep in flight (the backend's `claimsInFlight`), and the slots each may fill. */
  private readonly maxRounds: number;
  private readonly roundSlots: number;
  /** Claim rounds in flight, and the free slots, reserved-slot share and prefetch room they were promised. */
  private readonly rounds = new Set<Promise<boolean>>();
  private readonly reserved = { slots: 0, nonHigh: 0, room: 0 };
  /** A concurrent round found nothing to start and none other was in flight: the loop may wait for work. */
  private idle = false;
  private readonly sandbox: SandboxPool | undefined;
  /** Task log lines: the worker id is bound once (pino serialises child bindings once, not per line). */
  private readonly taskLog: Logger;
  /** The two lines per attempt, in pino's format without its generic serialisation (see task-lines.ts). */
  private readonly taskLines: TaskLines;
  private readonly events = new EventEmitter();
  private loopDone: Promise<void> | undefined;
  private stopping = false;
  private readonly stopAc = new AbortController();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private readonly startedAt: number;
  processed = 0;
  failed = 0;

  constructor(private readonly opts: WorkerOptions) {
    this.now = opts.now ?? Date.now;
    this.queues = rankQueues(opts.queues ?? ['high_priority', 'default', 'low_priority']);
    if (this.queues.length === 0) throw new Error('a worker needs at least one queue');
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.prefetch = Math.max(0, opts.prefetch ?? 0);
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.heartbeatMs = opts.heartbeatMs ?? Math.min(1000, Math.floor(this.leaseMs / 3));
    this.maxRounds = Math.max(1, Math.min(this.concurrency, opts.queue.claimsInFlight ?? 1));
    this.roundSlots = Math.ceil(this.concurrency / this.maxRounds);
    this.id = opts.id ?? `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.startedAt = this.now();
    this.taskLog = opts.logger.child({ worker: this.id });
    this.taskLines = new TaskLines(this.taskLog);
    this.sandbox = opts.sandbox ? new SandboxPool({ ...opts.sandbox, logger: opts.logger }) : undefined;
    this.events.setMaxListeners(0);
  }

  /** Slots non-high jobs may use: all but one when this worker serves high_priority and has 2+ slots. */
  private get nonHighCap(): number {
    return this.queues.includes('high_priority') && this.concurrency > 1
      ? this.concurrency - 1
      : this.concurrency;
  }

  get active(): number {
    return this.running.size;
  }

  /** PIDs of live sandbox children (tests: recycling). */
  childPids(): number[] {
    return this.sandbox?.pids() ?? [];
  }

  start(): this {
    if (this.loopDone) return this;
    this.opts.logger.info(
      {
        worker: this.id,
        queues: this.queues,
        concurrency: this.concurrency,
        prefetch: this.prefetch,
        backend: this.opts.queue.backend,
      },
      'worker started',
    );
    this.loopDone = this.loop().catch((err: unknown) => {
      this.opts.logger.fatal({ err: String(err), worker: this.id }, 'worker loop crashed');
      throw err;
    });
    this.heartbeatTimer = setInterval(() => void this.beat(), this.heartbeatMs);
    void this.beat();
    const stallEvery = Math.max(200, Math.floor(this.leaseMs / 2));
    this.stallTimer = setInterval(() => void this.recover(), stallEvery);
    void this.recover();
    const cleanup = this.opts.cleanupIntervalMs ?? 0;
    if (cleanup > 0 && this.opts.registry.get('maintenance.cleanup')) {
      const schedule = () => void this.scheduleCleanup(cleanup);
      this.cleanupTimer = setInterval(schedule, cleanup);
      schedule();
    }
    return this;
  }

  private async scheduleCleanup(everyMs: number): Promise<void> {
    try {
      // One cleanup per interval across all workers: the idempotency key names the interval.
      const slot = Math.floor(this.now() / everyMs);
      await this.opts.queue.enqueue(
        this.opts.registry.request(
          'maintenance.cleanup',
          {},
          { idempotencyKey: `maintenance.cleanup:${everyMs}:${slot}` },
        ),
      );
    } catch (err) {
      this.opts.logger.warn({ err: String(err) }, 'could not schedule maintenance.cleanup');
    }
  }

  /** Returns stalled jobs to their queues and writes the `task_runs` row of each lost attempt. */
  private async recover(): Promise<void> {
    let lost;
    try {
      lost = await this.opts.queue.recoverStalled();
    } catch (err) {
      this.opts.logger.warn({ err: String(err) }, 'stalled-job check failed');
      return;
    }
    if (lost.length === 0) return;
    this.opts.logger.warn(
      { jobs: lost.length, dead: lost.filter((a) => a.dead).length, worker: this.id },
      'returned stalled jobs to their queues',
    );
    const found = this.now();
    for (const a of lost) {
      const error = `stalled: worker ${a.worker ?? '(unknown)'} stopped renewing its lease (it died or hung)`;
      this.opts.taskRuns?.record({
        task_id: a.id,
        queue: a.queue,
        name: a.name,
        attempt: a.attempt,
        // The job runs again (retrying) or, past the stall limit, is dead (failed).
        status: a.dead ? 'failed' : 'retrying',
        enqueued_at: new Date(a.enqueuedAt).toISOString(),
        started_at: a.startedAt === null ? null : new Date(a.startedAt).toISOString(),
        finished_at: new Date(found).toISOString(),
        wait_ms: a.startedAt === null ? null : Math.max(0, a.startedAt - a.enqueuedAt),
        run_ms: a.startedAt === null ? null : Math.max(0, found - a.startedAt),
        worker: a.worker,
        error,
      });
    }
  }

  record(): WorkerRecord {
    return {
      id: this.id,
      host: os.hostname(),
      pid: process.pid,
      queues: this.queues,
      concurrency: this.concurrency,
      active: this.running.size,
      processed: this.processed,
      failed: this.failed,
      startedAt: this.startedAt,
      lastSeenAt: this.now(),
    };
  }

  private async beat(): Promise<void> {
    try {
      const held = [
        ...[...this.running.values()].map((r) => r.job),
        ...this.buffer,
        ...this.pendingSettle.map((st) => st.job),
      ];
      const cancel = await this.opts.queue.heartbeat(this.record(), held);
      for (const id of cancel) this.running.get(id)?.ac.abort(new TaskCancelledError());
    } catch (err) {
      this.opts.logger.warn({ err: String(err), worker: this.id }, 'heartbeat failed');
    }
  }

  /** Resolves when a slot frees or a concurrent claim round ends. */
  private slotFreed(): Promise<void> {
    return new Promise((resolve) => (this.loopWaiter = resolve));
  }

  private wakeLoop(): void {
    const w = this.loopWaiter;
    this.loopWaiter = undefined;
    w?.();
  }

  /** A slot freed (or the worker stops): wakes the loop and an idle wait. */
  private freeSlot(): void {
    this.slotEpoch++;
    this.wakeLoop();
    this.events.emit('slot');
  }

  private async loop(): Promise<void> {
    let lastYield = performance.now();
    while (!this.stopping) {
      // Claims and no-op tasks can settle in microtasks alone: yield to the event loop now and then, so
      // timers (heartbeats, the API in `omnivibe start`) are never starved by a busy worker.
      if (performance.now() - lastYield > 5) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
      if (this.idle) {
        this.idle = false;
        await this.waitForWork();
        continue;
      }
      // Slots promised to claims in flight are not free.
      const free = this.concurrency - this.running.size - this.reserved.slots;
      const nonHighFree = Math.max(0, this.nonHighCap - this.runningNonHigh - this.reserved.nonHigh);
      if (free <= 0 || this.rounds.size >= this.maxRounds) {
        if (this.maxRounds > 1) {
          // Claims in flight: the next one goes out as soon as a slot frees (it rides on that job's
          // outcome), not at the end of the turn, so Redis runs it while this process handles the rest.
          // An outcome waiting for a slot is committed within a few ms without one.
          if (free <= 0 && this.pendingSettle.length > 0) this.flushSoon();
          await this.slotFreed();
          continue;
        }
        if (this.pendingSettle.length === 0) await this.slotFreed();
        // Let the other slots that free in this tick join the same claim.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      // Prefetched jobs may start without a claim only while nothing could outrank them: no work became
      // ready anywhere since the last claim (the backend's version token) and that claim is recent
      // (bounds the wait of a delayed job that came due meanwhile). Settlements wait a few ms at most.
      if (
        this.buffer.length > 0 &&
        this.rounds.size === 0 &&
        this.claimVersion !== undefined &&
        performance.now() - this.claimedAt < 20 &&
        this.pendingSettle.length < 256 &&
        // Last: the backend's check may cost a statement.
        this.opts.queue.version?.() === this.claimVersion
      ) {
        // Only jobs ranking at least with the worst job of the last claim: anything still waiting ranks below that.
        const floor = this.claimFloor;
        const safe = floor ? this.buffer.filter((j) => byRank(j, floor) <= 0) : this.buffer;
        const { started, keep } = this.startBest(safe, free, nonHighFree);
        if (started > 0) {
          this.buffer = [...keep, ...this.buffer.filter((j) => !safe.includes(j))];
          this.flushSoon();
          continue;
        }
      }
      const slots = Math.min(free, this.roundSlots);
      const round = this.claimRound(slots, Math.min(nonHighFree, slots));
      if (this.maxRounds === 1) {
        // Nothing ready (or only work our free slots may not take): wait for an enqueue, a freed slot or a poll.
        if (await round) await this.waitForWork();
        continue;
      }
      // Several claims in flight (a backend behind a network): this claim's round trip overlaps the other
      // rounds' jobs. Each round fills only the slots it was promised; the loop looks for more free slots.
      const ended = (idle: boolean) => {
        this.rounds.delete(tracked);
        if (idle && this.rounds.size === 0) this.idle = true;
        this.wakeLoop();
        return idle;
      };
      const tracked: Promise<boolean> = round.then(ended, (err: unknown) => {
        this.opts.logger.error({ err: String(err), worker: this.id }, 'claim round failed');
        return ended(false);
      });
      this.rounds.add(tracked);
    }
  }

  /**
   * One claim: commits the pending settlements, leases jobs for up to `free` slots (of which
   * `nonHighFree` may take jobs from queues other than high_priority) plus the prefetch room, and starts
   * the best of them and the held jobs. Resolves true when nothing could start and nothing changed
   * meanwhile (the loop may wait for work).
   */
  private async claimRound(free: number, nonHighFree: number): Promise<boolean> {
    const epoch = this.slotEpoch;
    // With several rounds in flight, each carries at most one settlement per slot it fills: a backend that
    // completes a job and leases the next in one call (BullMQ) then needs no separate fetch.
    const settle = this.pendingSettle.splice(0, this.maxRounds > 1 ? free : this.pendingSettle.length);
    const room = Math.max(0, this.prefetch - this.buffer.length - this.reserved.room);
    const promise = { slots: free, nonHigh: nonHighFree, room };
    this.reserve(promise, 1);
    let claimed: ClaimedJob[];
    try {
      const version = this.opts.queue.version?.();
      claimed = await this.opts.queue.claim({
        settle,
        queues: this.queues,
        max: free + room,
        maxNonHigh: nonHighFree + room,
        workerId: this.id,
      });
      this.claimVersion = version;
      this.claimedAt = performance.now();
      // The last of the claim in claim order (a stable sort's last element).
      this.claimFloor = claimed.length
        ? claimed.reduce((worst, j) => (byRank(j, worst) >= 0 ? j : worst))
        : undefined;
      this.afterSettle(settle);
      // This claim committed every settlement made so far: a pending flush would only commit a straggler
      // alone (one more transaction). Later buffer starts arm it again.
      if (settle.length > 0 && this.pendingSettle.length === 0) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
      }
    } catch (err) {
      this.reserve(promise, -1);
      this.pendingSettle.unshift(...settle);
      this.opts.logger.error({ err: String(err), worker: this.id }, 'claim failed; retrying shortly');
      await this.sleep(500);
      return false;
    }
    this.reserve(promise, -1);
    // The buffer is in claim order: the claimed jobs are inserted into it rather than sorted with it.
    const { started, keep } = this.startBest(withRanked(this.buffer, claimed), free, nonHighFree, true);
    this.buffer = keep;
    if (keep.length > this.prefetch) {
      this.buffer = keep.slice(0, this.prefetch);
      for (const job of keep.slice(this.prefetch)) await this.giveBack(job);
    }
    // A slot freed (or a settlement arrived) while we were claiming: look again instead of waiting.
    // (Jobs claimed but not startable, e.g. only the reserved slot is free, wait in the buffer.)
    return started === 0 && this.pendingSettle.length === 0 && this.slotEpoch === epoch;
  }

  private reserve(p: { slots: number; nonHigh: number; room: number }, sign: 1 | -1): void {
    this.reserved.slots += sign * p.slots;
    this.reserved.nonHigh += sign * p.nonHigh;
    this.reserved.room += sign * p.room;
  }

  /** Waits for an enqueue, a freed slot, a stop or the idle poll. */
  private async waitForWork(): Promise<void> {
    const ac = new AbortController();
    const wake = () => ac.abort();
    this.stopAc.signal.addEventListener('abort', wake, { once: true });
    this.events.once('slot', wake);
    // Only the reserved slot is free: only high_priority work can use it.
    const nonHighFree = this.nonHighCap - this.runningNonHigh - this.reserved.nonHigh;
    const queues = nonHighFree <= 0 ? (['high_priority'] as QueueName[]) : this.queues;
    await this.opts.queue.waitForWork(queues, this.opts.idleWaitMs ?? 1000, ac.signal);
    this.events.off('slot', wake);
    this.stopAc.signal.removeEventListener('abort', wake);
  }

  /** Starts the best jobs in priority order within the free slots (the reserved slot only for high_priority). */
  private startBest(
    jobs: ClaimedJob[],
    free: number,
    nonHighFree: number,
    inOrder = false,
  ): { started: number; keep: ClaimedJob[] } {
    const candidates = inOrder ? jobs : jobs.sort(byRank);
    const keep: ClaimedJob[] = [];
    let started = 0;
    let startedNonHigh = 0;
    for (const job of candidates) {
      const isHigh = job.queue === 'high_priority';
      if (started < free && (isHigh || startedNonHigh < nonHighFree)) {
        started++;
        if (!isHigh) startedNonHigh++;
        this.run(job);
      } else keep.push(job);
    }
    return { started, keep };
  }

  /** Commits pending settlements within a few ms when no claim will carry them. */
  private flushSoon(): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flushSettlements();
    }, 5);
  }

  private afterSettle(settle: readonly Settlement[]): void {
    for (const st of settle) {
      this.settled.get(st.job.id)?.();
      this.settled.delete(st.job.id);
    }
  }

  /** Hands a finished job's outcome to the loop and resolves once it is committed. */
  private submit(st: Settlement): Promise<void> {
    return new Promise((resolve) => {
      this.settled.set(st.job.id, resolve);
      this.pendingSettle.push(st);
    });
  }

  /** Commits pending settlements without claiming (shutdown). */
  /**
   * Commits pending settlements. Calls are chained: a flush returns only after every earlier
   * one has committed, so stop() never exits while a timer-started flush is still writing.
   */
  private flushSettlements(): Promise<void> {
    const next = this.flushChain.then(() => this.commitSettlements());
    // The caller sees a failure through `next`; the chain itself must stay usable.
    this.flushChain = next.catch(() => undefined);
    return next;
  }

  private async commitSettlements(): Promise<void> {
    const settle = this.pendingSettle.splice(0);
    if (settle.length === 0) return;
    try {
      await this.opts.queue.claim({ settle, queues: this.queues, max: 0, workerId: this.id });
    } catch (err) {
      this.opts.logger.error(
        { err: String(err), jobs: settle.length },
        'could not commit finished jobs; their leases will expire and they run again',
      );
    }
    this.afterSettle(settle);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.stopAc.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  private async giveBack(job: ClaimedJob): Promise<void> {
    try {
      await this.opts.queue.release(job, this.id);
    } catch (err) {
      this.opts.logger.warn(
        { err: String(err), jobId: job.id },
        'could not return a job to its queue; its lease will expire',
      );
    }
  }

  private run(job: ClaimedJob): void {
    const ac = new LazyAbort();
    const entry: Running = { job, ac, done: RESOLVED };
    const nonHigh = job.queue !== 'high_priority';
    this.running.set(job.id, entry);
    if (nonHigh) this.runningNonHigh++;
    const finished = () => {
      this.running.delete(job.id);
      if (nonHigh) this.runningNonHigh--;
    };
    entry.done = this.execute(job, ac)
      .then((st) => {
        finished();
        if (!st) return;
        // The settlement rides on the loop's next claim; while it waits the heartbeat still covers it.
        const committed = this.submit(st);
        this.freeSlot();
        return committed;
      })
      .catch((err: unknown) => {
        finished();
        this.freeSlot();
        this.opts.logger.error(
          { err: String(err), jobId: job.id },
          'settling a job failed; its lease will expire',
        );
      });
  }

  private async execute(job: ClaimedJob, ac: LazyAbort): Promise<Settlement | undefined> {
    const { queue, registry } = this.opts;
    const logger = this.taskLog;
    const startedAt = this.now();
    const waitMs = Math.max(0, startedAt - job.enqueuedAt);
    const base = { jobId: job.id, task: job.name, queue: job.queue, attempt: job.attempt };
    this.taskLines.started(base, waitMs);
    const task = registry.get(job.name);
    let result: unknown;
    let error: ErrorInfo | undefined;
    let softTimer: NodeJS.Timeout | undefined;
    let hardTimer: NodeJS.Timeout | undefined;
    try {
      if (!task) throw new UnknownTaskError(job.name);
      registry.validate(job.name, job.payload);
      const { softTimeoutMs, hardTimeoutMs } = task.def;
      const onProgress = (v: number) =>
        void queue
          .progress(job, this.id, v)
          .catch((err: unknown) =>
            logger.warn({ err: String(err), jobId: job.id }, 'progress update failed'),
          );
      if (task.def.sandboxed) {
        if (!this.sandbox)
          throw new Error(`task ${job.name} is sandboxed but this worker has no sandbox configured`);
        const out = await this.sandbox.run(
          {
            id: job.id,
            name: job.name,
            payload: job.payload,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            ...(softTimeoutMs ? { softTimeoutMs } : {}),
            ...(hardTimeoutMs ? { hardTimeoutMs } : {}),
            onProgress,
          },
          ac,
        );
        result = out.result;
      } else {
        if (softTimeoutMs)
          softTimer = setTimeout(
            () => ac.abort(new TaskTimeoutError(`soft timeout after ${softTimeoutMs} ms`, 'soft')),
            softTimeoutMs,
          );
        const run = task.def.handler(job.payload, {
          jobId: job.id,
          attempt: job.attempt,
          maxAttempts: job.maxAttempts,
          // Made on first use (LazyAbort): a handler that never looks costs no controller.
          get signal() {
            return ac.signal;
          },
          progress: async (v: number) => onProgress(v),
          // A child logger per attempt costs more than a no-op task: built only when the handler uses it.
          get logger() {
            return logger.child(base);
          },
          deps: this.opts.deps,
        });
        result = hardTimeoutMs
          ? await Promise.race([
              run,
              new Promise<never>((_, reject) => {
                hardTimer = setTimeout(
                  () =>
                    reject(
                      new TaskTimeoutError(
                        `hard timeout after ${hardTimeoutMs} ms (in-process: the attempt is abandoned)`,
                        'hard',
                      ),
                    ),
                  hardTimeoutMs,
                );
              }),
            ])
          : await run;
      }
    } catch (err) {
      // An abort explains itself (cancel, soft timeout, shutdown) better than the handler's AbortError.
      const reason: unknown = ac.aborted ? ac.reason : undefined;
      if (err instanceof TaskTimeoutError && err.kind === 'hard') error = describeError(err);
      else if (reason instanceof Error) error = describeError(reason);
      else if (err instanceof SandboxTaskError) error = err.info;
      else error = describeError(err);
    } finally {
      clearTimeout(softTimer);
      clearTimeout(hardTimer);
    }
    const finishedAt = this.now();
    const runMs = finishedAt - startedAt;
    let status: 'succeeded' | 'failed' | 'retrying' | 'cancelled';
    let retryInMs: number | undefined;
    let settlement: Settlement;
    if (!error) {
      status = 'succeeded';
      settlement = { kind: 'complete', job, result };
      this.processed++;
    } else if (error.cancelled) {
      status = 'cancelled';
      settlement = { kind: 'cancel', job };
    } else if (error.name === 'ShutdownAbort') {
      // Immediate stop: the attempt does not count; the job goes back to its queue.
      logger.warn({ ...base, runMs }, 'task interrupted by shutdown; returned to its queue');
      return { kind: 'release', job };
    } else {
      const final = error.permanent || job.attempt >= job.maxAttempts;
      const delay =
        error.retryAfterMs !== undefined
          ? Math.min(Math.max(0, error.retryAfterMs), MAX_BACKOFF_MS)
          : backoffDelayMs(job.attempt, job.backoff, this.opts.random);
      status = final ? 'failed' : 'retrying';
      settlement = {
        kind: 'fail',
        job,
        error: `${error.name}: ${error.message}`,
        outcome: final ? { final: true } : { retryAt: finishedAt + delay },
      };
      this.failed++;
      this.processed++;
      if (!final) retryInMs = delay;
    }
    this.opts.taskRuns?.record({
      task_id: job.id,
      queue: job.queue,
      name: job.name,
      attempt: job.attempt,
      status,
      enqueued_at: this.enqueuedIso.iso(job.enqueuedAt),
      started_at: this.runIso.iso(startedAt),
      finished_at: this.runIso.iso(finishedAt),
      wait_ms: waitMs,
      run_ms: runMs,
      worker: this.id,
      error: error ? `${error.name}: ${error.message}` : null,
    });
    this.taskLines.finished(base, {
      ...(retryInMs === undefined ? {} : { retryInMs }),
      status,
      waitMs,
      runMs,
      ...(error ? { error: `${error.name}: ${error.message}` } : {}),
    });
    return settlement;
  }

  /**
   * Stops claiming, lets active tasks finish within `timeoutMs`, then aborts the
   * rest and returns their jobs to the queue (their attempt does not count).
   * Prefetched jobs go back at once.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    const timeoutMs = opts.now ? 0 : (opts.timeoutMs ?? 30_000);
    if (!this.stopping) {
      this.stopping = true;
      this.stopAc.abort();
      this.freeSlot();
      this.opts.logger.info({ worker: this.id, active: this.running.size, timeoutMs }, 'worker stopping');
    }
    await this.loopDone?.catch(() => undefined);
    // Concurrent claim rounds still in flight start what they claimed (graceful) or leave it in the buffer.
    await Promise.all(this.rounds);
    for (const job of this.buffer.splice(0)) await this.giveBack(job);
    await this.flushSettlements();
    const active = [...this.running.values()];
    if (active.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const finished = Promise.all(active.map((r) => r.done));
      // Settlements of tasks that finish meanwhile are committed as they come.
      const flusher = setInterval(() => void this.flushSettlements(), 20);
      await Promise.race([
        finished,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
      clearInterval(flusher);
      await this.flushSettlements();
      for (const r of this.running.values()) {
        const abort = new Error('worker shutting down');
        abort.name = 'ShutdownAbort';
        r.ac.abort(abort);
      }
      await Promise.race([
        Promise.all([...this.running.values()].map((r) => r.done)),
        new Promise((resolve) => setTimeout(resolve, 2000)),
      ]);
      await this.flushSettlements();
      // Handlers that ignore their signal: hand their jobs back anyway (the lease would return them later).
      for (const r of this.running.values()) await this.giveBack(r.job);
    }
    clearInterval(this.heartbeatTimer);
    clearInterval(this.stallTimer);
    clearInterval(this.cleanupTimer);
    clearTimeout(this.flushTimer);
    await this.flushSettlements();
    await this.sandbox?.close(1000);
    await this.opts.taskRuns?.close();
    try {
      await this.opts.queue.removeWorker(this.id);
    } catch (err) {
      this.opts.logger.warn({ err: String(err) }, 'could not remove the worker record');
    }
    this.opts.logger.info(
      { worker: this.id, processed: this.processed, failed: this.failed },
      'worker stopped',
    );
  }
}

/**
 * The worker runtime, the same for every backend. It composes:
 * - claim-scheduler.ts: slots, the reserved high_priority slot, claims in strict priority order, prefetch;
 * - settlement-batch.ts: outcomes committed with the next claim;
 * - run-attempt.ts: one attempt (payload check, handler in process or in a sandbox child, timeouts);
 * - retry-policy.ts: what follows a failed attempt;
 * - attempt-records.ts: each attempt's `task_runs` row and log lines;
 * - housekeeping.ts: heartbeats (lease renewal, cancels, lost leases), stalled jobs, cleanup scheduling.
 * `stop()` is graceful, `stop({ now: true })` immediate.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { thisHost } from '../host.js';
import { describeError, type ErrorInfo, TaskCancelledError } from '../errors.js';
import type { TaskRegistry } from '../registry.js';
import { SandboxPool, type SandboxPoolOptions } from '../sandbox/sandbox-pool.js';
import { Shortcuts } from '../shortcuts.js';
import type { TaskRunRecorder } from '../task-runs.js';
import {
  type ClaimedJob,
  type HeartbeatResult,
  type JobLeasing,
  type JobProducer,
  type JobSpans,
  type QueueName,
  rankQueues,
  type Settlement,
  type WorkerRecord,
} from '../types.js';
import { type AttemptObserver, AttemptRecords } from './attempt-records.js';
import { ClaimScheduler } from './claim-scheduler.js';
import { Housekeeping } from './housekeeping.js';
import { type LazyAbort, namedAbort } from './lazy-abort.js';
import { LEASE_LOST, retryVerdict, SHUTDOWN_ABORT } from './retry-policy.js';
import { AttemptRunner } from './run-attempt.js';
import { SettlementBatch } from './settlement-batch.js';

export interface WorkerOptions {
  /** The leasing and settlement role. */
  queue: JobLeasing;
  registry: TaskRegistry;
  /** Handed to in-process handlers as ctx.deps. */
  deps: unknown;
  logger: Logger;
  /** Moves attempt rows from the job store to task_runs while the worker runs (closed when it stops). */
  taskRuns?: TaskRunRecorder;
  /** Hears every attempt recorded (metrics). */
  onAttempt?: AttemptObserver;
  /** Fast paths through dependencies' internals (default: all on). */
  shortcuts?: Shortcuts;
  /** A span per attempt, continuing the trace its job carries (tracing on). */
  spans?: Pick<JobSpans, 'attempt' | 'current'>;
  /** The mixin of `logger`, when it has one (tracing: the span ids): the attempts' own lines carry its fields. */
  logMixin?: () => Record<string, string | undefined>;
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
  sandbox?: Pick<SandboxPoolOptions, 'childModule' | 'maxTasksPerChild' | 'maxMemoryMb' | 'env' | 'observer'>;
  /** Schedules maintenance.cleanup every `intervalMs` through `producer` (default: never). */
  cleanup?: { producer: JobProducer; intervalMs: number };
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

export class Worker {
  readonly id: string;
  readonly queues: QueueName[];
  readonly concurrency: number;
  private readonly prefetch: number;
  private readonly now: () => number;
  private readonly sandbox: SandboxPool | undefined;
  /** Task log lines: the worker id is bound once (pino serialises child bindings once, not per line). */
  private readonly taskLog: Logger;
  private readonly records: AttemptRecords;
  private readonly runner: AttemptRunner;
  private readonly batch: SettlementBatch;
  private readonly scheduler: ClaimScheduler;
  private readonly housekeeping: Housekeeping;
  private loopDone: Promise<void> | undefined;
  /** Stops hearing cancel requests as they are made. */
  private unsubscribeCancels: (() => void) | undefined;
  private stopping = false;
  private readonly stopAc = new AbortController();
  private readonly startedAt: number;
  private readonly host = thisHost();
  private readonly shortcuts: Shortcuts;
  processed = 0;
  failed = 0;

  constructor(private readonly opts: WorkerOptions) {
    this.now = opts.now ?? Date.now;
    this.queues = rankQueues(opts.queues ?? ['high_priority', 'default', 'low_priority']);
    if (this.queues.length === 0) throw new Error('a worker needs at least one queue');
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.prefetch = Math.max(0, opts.prefetch ?? 0);
    const leaseMs = opts.leaseMs ?? 30_000;
    this.id = opts.id ?? `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.startedAt = this.now();
    this.taskLog = opts.logger.child({ worker: this.id });
    this.shortcuts = opts.shortcuts ?? Shortcuts.allOn();
    const { onAttempt, taskRuns } = opts;
    // Every attempt recorded is stored with its settlement (or recovery): the recorder moves it shortly after.
    this.records = new AttemptRecords(
      this.taskLog,
      this.id,
      taskRuns
        ? (row) => {
            onAttempt?.(row);
            taskRuns.soon();
          }
        : onAttempt,
      this.shortcuts,
      opts.logMixin,
    );
    this.sandbox = opts.sandbox ? new SandboxPool({ ...opts.sandbox, logger: opts.logger }) : undefined;
    this.runner = new AttemptRunner({
      registry: opts.registry,
      leasing: opts.queue,
      deps: opts.deps,
      taskLog: this.taskLog,
      workerId: this.id,
      sandbox: this.sandbox,
      spans: opts.spans,
    });
    this.batch = new SettlementBatch(opts.queue, this.queues, this.id, opts.logger);
    this.scheduler = new ClaimScheduler({
      leasing: opts.queue,
      batch: this.batch,
      execute: (job, ac) => this.execute(job, ac),
      logger: opts.logger,
      workerId: this.id,
      queues: this.queues,
      concurrency: this.concurrency,
      prefetch: this.prefetch,
      idleWaitMs: opts.idleWaitMs ?? 1000,
      stop: this.stopAc.signal,
    });
    this.housekeeping = new Housekeeping({
      leasing: opts.queue,
      registry: opts.registry,
      records: this.records,
      logger: opts.logger,
      workerId: this.id,
      heartbeatMs: opts.heartbeatMs ?? Math.min(1000, Math.floor(leaseMs / 3)),
      leaseMs,
      ...(opts.cleanup ? { cleanup: opts.cleanup } : {}),
      now: this.now,
      record: () => this.record(),
      held: () => this.scheduler.heldJobs(),
      onHeartbeat: (found) => this.onHeartbeat(found),
    });
  }

  get active(): number {
    return this.scheduler.running.size;
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
        shortcutsOff: this.shortcuts
          .report()
          .filter((r) => !r.enabled)
          .map((r) => r.name),
      },
      'worker started',
    );
    // Probed when the queue, this worker's log lines and its recorder were made (see shortcuts.ts).
    for (const r of this.shortcuts.report())
      if (r.unavailable !== undefined)
        this.opts.logger.warn(
          { shortcut: r.name, finding: r.unavailable },
          'a fast path through a dependency does not match this version of it; using the fallback',
        );
    this.loopDone = this.scheduler.loop().catch((err: unknown) => {
      this.opts.logger.fatal({ err, worker: this.id }, 'worker loop crashed');
      throw err;
    });
    this.housekeeping.start();
    this.opts.taskRuns?.start();
    this.unsubscribeCancels = this.opts.queue.onCancelRequested?.((id) =>
      this.onHeartbeat({ cancel: [id], lost: [] }),
    );
    return this;
  }

  record(): WorkerRecord {
    return {
      id: this.id,
      host: this.host.name,
      bootId: this.host.bootId,
      pid: process.pid,
      queues: this.queues,
      concurrency: this.concurrency,
      active: this.scheduler.running.size,
      processed: this.processed,
      failed: this.failed,
      startedAt: this.startedAt,
      lastSeenAt: this.now(),
    };
  }

  /** Cancel requests abort their attempts (or end held jobs); a lost lease aborts its attempt at once, and a held job is dropped. */
  private onHeartbeat(found: HeartbeatResult): void {
    for (const id of found.cancel) {
      const running = this.scheduler.running.get(id);
      if (running) running.ac.abort(new TaskCancelledError());
      else {
        // Held (prefetched), never started: it ends cancelled without an attempt.
        const held = this.scheduler.buffer.find((j) => j.id === id);
        if (!held) continue;
        this.scheduler.dropHeld(id);
        void this.batch.submit({ kind: 'cancel', job: held });
        this.batch.flushSoon();
      }
    }
    for (const id of found.lost) {
      const running = this.scheduler.running.get(id);
      if (running) {
        this.opts.logger.warn(
          { jobId: id, worker: this.id },
          'lost the lease of a running job (it expired and went back to its queue, or another worker holds it): aborting the attempt',
        );
        running.ac.abort(namedAbort(LEASE_LOST, 'the worker lost the lease of this job'));
      } else this.scheduler.dropHeld(id);
    }
  }

  /** Runs one attempt (inside its span when tracing), records it, and says how to settle it (undefined: the lease was lost). */
  private execute(job: ClaimedJob, ac: LazyAbort): Promise<Settlement | undefined> {
    const spans = this.opts.spans;
    return spans ? spans.attempt(job, () => this.attempt(job, ac)) : this.attempt(job, ac);
  }

  private async attempt(job: ClaimedJob, ac: LazyAbort): Promise<Settlement | undefined> {
    const startedAt = this.now();
    this.records.started(job, startedAt);
    this.batch.started(job, startedAt);
    const end = await this.runner.run(job, ac);
    const finishedAt = this.now();
    // A lost lease ends the attempt whatever the handler returned: the job is no longer this worker's.
    const lost = ac.aborted && ac.reason instanceof Error && ac.reason.name === LEASE_LOST;
    const error: ErrorInfo | undefined = lost ? describeError(ac.reason) : end.error;
    if (!error) {
      this.processed++;
      const run = this.records.finished(job, { status: 'succeeded', startedAt, finishedAt });
      return { kind: 'complete', job, result: end.result, run };
    }
    const message = `${error.name}: ${error.message}`;
    const verdict = retryVerdict(error, job, this.opts.random);
    switch (verdict.kind) {
      case 'released':
        // Immediate stop: the attempt does not count; the job goes back to its queue.
        this.taskLog.warn(
          {
            jobId: job.id,
            task: job.name,
            queue: job.queue,
            attempt: job.attempt,
            runMs: finishedAt - startedAt,
          },
          'task interrupted by shutdown; returned to its queue',
        );
        return { kind: 'release', job };
      case 'lost':
        // Whoever recovers the job records the lost attempt (see Housekeeping); nothing is settled here.
        this.batch.ended(job);
        return undefined;
      case 'cancelled':
        return {
          kind: 'cancel',
          job,
          run: this.records.finished(job, { status: 'cancelled', startedAt, finishedAt, error: message }),
        };
      case 'failed':
        this.failed++;
        this.processed++;
        return {
          kind: 'fail',
          job,
          error: message,
          outcome: { final: true },
          run: this.records.finished(job, { status: 'failed', startedAt, finishedAt, error: message }),
        };
      case 'retrying':
        this.failed++;
        this.processed++;
        return {
          kind: 'fail',
          job,
          error: message,
          outcome: { retryAt: finishedAt + verdict.delayMs },
          run: this.records.finished(job, {
            status: 'retrying',
            startedAt,
            finishedAt,
            error: message,
            retryInMs: verdict.delayMs,
          }),
        };
    }
  }

  /**
   * Stops claiming, lets active tasks finish within `timeoutMs`, then aborts the
   * rest and returns their jobs to the queue (their attempt does not count).
   * Prefetched jobs go back at once.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    const timeoutMs = opts.now ? 0 : (opts.timeoutMs ?? 30_000);
    const { scheduler, batch } = this;
    if (!this.stopping) {
      this.stopping = true;
      this.stopAc.abort();
      scheduler.freeSlot();
      this.opts.logger.info(
        { worker: this.id, active: scheduler.running.size, timeoutMs },
        'worker stopping',
      );
    }
    await this.loopDone?.catch(() => undefined);
    // Concurrent claim rounds still in flight start what they claimed (graceful) or leave it in the buffer.
    await Promise.all(scheduler.rounds);
    for (const job of scheduler.buffer.splice(0)) await scheduler.giveBack(job);
    await batch.flush();
    const active = [...scheduler.running.values()];
    if (active.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const finished = Promise.all(active.map((r) => r.done));
      // Settlements of tasks that finish meanwhile are committed as they come.
      const flusher = setInterval(() => void batch.flush(), 20);
      await Promise.race([
        finished,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
      clearInterval(flusher);
      await batch.flush();
      for (const r of scheduler.running.values())
        r.ac.abort(namedAbort(SHUTDOWN_ABORT, 'worker shutting down'));
      await Promise.race([
        Promise.all([...scheduler.running.values()].map((r) => r.done)),
        new Promise((resolve) => setTimeout(resolve, 2000)),
      ]);
      await batch.flush();
      // Handlers that ignore their signal: hand their jobs back anyway (the lease would return them later).
      for (const r of scheduler.running.values()) await scheduler.giveBack(r.job);
    }
    this.housekeeping.stop();
    this.unsubscribeCancels?.();
    batch.stopTimer();
    await batch.flush();
    await this.sandbox?.close(1000);
    await this.opts.taskRuns?.close();
    try {
      await this.opts.queue.removeWorker(this.id);
    } catch (err) {
      this.opts.logger.warn({ err }, 'could not remove the worker record');
    }
    this.opts.logger.info(
      { worker: this.id, processed: this.processed, failed: this.failed },
      'worker stopped',
    );
  }
}

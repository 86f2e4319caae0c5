/**
 * The queue contract, split by role: enqueue (JobProducer), inspection and
 * administration (JobAdmin), leasing and settlement (JobLeasing, the worker
 * runtime's). Two backends implement all three: the embedded SQLite engine (`sqlite/`, the
 * default) and BullMQ on Redis (`bullmq/`, when REDIS_URL is set).
 *
 * Priority: "higher runs first" everywhere in this API. Queues are ranked
 * (`high_priority` 10 > `default` 5 > `low_priority` 1) and a worker always
 * claims from the highest-ranked non-empty queue it serves; within a queue a
 * job's own `priority` (1..100, default 50) orders it, then FIFO. Each backend
 * maps that explicitly (see its file).
 */

import type { AttemptRow, RunStore } from './task-runs.js';

export const QUEUE_NAMES = ['high_priority', 'default', 'low_priority'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** The seed's queue priorities; higher runs first. */
export const QUEUE_PRIORITY: Readonly<Record<QueueName, number>> = {
  high_priority: 10,
  default: 5,
  low_priority: 1,
};

/** Queue names in claim order (highest priority first). */
export const rankQueues = (queues: readonly QueueName[]): QueueName[] =>
  [...new Set(queues)].sort((a, b) => QUEUE_PRIORITY[b] - QUEUE_PRIORITY[a]);

export const isQueueName = (v: string): v is QueueName => (QUEUE_NAMES as readonly string[]).includes(v);

/** Job priority within a queue: 1..100, higher runs first. */
export const MIN_JOB_PRIORITY = 1;
export const MAX_JOB_PRIORITY = 100;
export const DEFAULT_JOB_PRIORITY = 50;

/**
 * `waiting` ready to run; `delayed` waiting for its run time (a first delay or a
 * retry back-off); `prefetched` leased by a worker and held ahead, not started
 * (on BullMQ only a job a completion fetched and a high_priority job displaced, see docs/jobs.md); `active` running on a worker; `completed`; `failed` (attempts
 * exhausted, permanent error or invalid payload); `dead` (stalled too often:
 * its worker died repeatedly); `cancelled`. failed, dead and cancelled jobs can be
 * retried (redriven).
 */
export const JOB_STATES = [
  'waiting',
  'delayed',
  'prefetched',
  'active',
  'completed',
  'failed',
  'dead',
  'cancelled',
] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINISHED_STATES: readonly JobState[] = ['completed', 'failed', 'dead', 'cancelled'];

/** Exponential back-off with full jitter: delay_n = random(0.5..1) · min(cap, base · 2^(n-1)). */
export interface BackoffOptions {
  /** First retry delay before jitter, ms (default 1000). */
  baseMs: number;
  /** Largest delay, ms (default 600 000, the seed's retry_backoff_max=600 s). */
  capMs: number;
  /** Randomise each delay within [delay/2, delay] (default true, the seed's retry_jitter). */
  jitter: boolean;
}

export interface EnqueueOptions {
  /** Default: the task's declared queue. */
  queue?: QueueName;
  /** Run no earlier than this many ms from now. */
  delayMs?: number;
  /** A second enqueue with the same key returns the first job instead of creating one. */
  idempotencyKey?: string;
  /** Total attempts including the first (default: the task's retry policy). */
  attempts?: number;
  backoff?: Partial<BackoffOptions>;
  /** 1..100 within the queue, higher first (default 50). */
  priority?: number;
}

/** What the backend stores for an enqueue: options resolved against the task's declaration. */
export interface EnqueueRequest {
  name: string;
  queue: QueueName;
  payload: unknown;
  delayMs: number;
  idempotencyKey: string | null;
  attempts: number;
  backoff: BackoffOptions;
  priority: number;
  /** The trace context its attempts continue from (opaque; set by the tracing hooks, see JobSpans). */
  trace?: string;
}

export interface EnqueueResult {
  id: string;
  /** False when an idempotency key matched an existing job. */
  created: boolean;
}

/** A job as the API shows it. Times are epoch ms. */
export interface Job {
  id: string;
  queue: QueueName;
  name: string;
  payload: unknown;
  state: JobState;
  priority: number;
  progress: number;
  /** Attempts started so far. */
  attemptsMade: number;
  maxAttempts: number;
  stalls: number;
  idempotencyKey: string | null;
  result: unknown;
  error: string | null;
  enqueuedAt: number;
  runAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  worker: string | null;
}

export interface ListJobsFilter {
  state?: JobState;
  queue?: QueueName;
  name?: string;
  /** Page size (default 20, at most 100). */
  limit?: number;
  /** next_cursor of the previous page. */
  cursor?: string;
}

export interface JobPage {
  items: Job[];
  next_cursor: string | null;
}

export interface QueueCounts {
  queue: QueueName;
  paused: boolean;
  counts: Record<JobState, number>;
  completedLastMinute: number;
  failedLastMinute: number;
  /** Age of the oldest ready job, ms (0 when none). */
  oldestWaitingMs: number;
}

/** A job leased to a worker. The worker must settle it (complete, fail, release) or keep its lease alive. */
export interface ClaimedJob {
  id: string;
  queue: QueueName;
  name: string;
  payload: unknown;
  priority: number;
  /** 1 for the first attempt. */
  attempt: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  enqueuedAt: number;
  startedAt: number;
  /** The trace context stored with the job at enqueue (opaque, see JobSpans); absent when none was. */
  trace?: string;
}

/**
 * An attempt lost with its worker (its lease expired: the process died or hung).
 * The job went back to its queue, or became dead past the stall limit. Returned
 * once, by the recovery that found it, so exactly one `task_runs` row records it.
 */
export interface StalledAttempt {
  id: string;
  queue: QueueName;
  name: string;
  /** The lost attempt's number (a stall does not use up an attempt: the re-run has the same number). */
  attempt: number;
  enqueuedAt: number;
  /** When the lost attempt started (null if the backend no longer knows). */
  startedAt: number | null;
  /** The worker that held it, when the backend knows. */
  worker: string | null;
  dead: boolean;
  /** Someone asked to cancel it: it ends cancelled instead of running again. */
  cancelled: boolean;
}

export interface WorkerRecord {
  id: string;
  host: string;
  /** The host's boot id (Linux), so a record from an earlier boot is known to be gone. */
  bootId?: string | undefined;
  pid: number;
  queues: QueueName[];
  concurrency: number;
  active: number;
  processed: number;
  failed: number;
  startedAt: number;
  lastSeenAt: number;
}

export interface JobEventMap {
  active: [job: ClaimedJob];
  progress: [jobId: string, progress: number];
  completed: [jobId: string, result: unknown];
  /** `final` is false when the job will be retried. */
  failed: [jobId: string, error: string, final: boolean];
  stalled: [jobId: string, dead: boolean];
  /** Something was enqueued (used for in-process wake-up). */
  enqueued: [queue: QueueName];
}

export type JobEventName = keyof JobEventMap;

/** How a failed attempt ends: retry at a time, or finish as failed. */
export type FailOutcome = { retryAt: number } | { final: true };

/**
 * How the worker ends a leased job; passed to `claim` so a settlement and the next claim share one round
 * trip. `run` is the attempt's task_runs row: the backend stores it with the settlement (see task-runs.ts).
 */
export type Settlement =
  | { kind: 'complete'; job: ClaimedJob; result: unknown; run?: AttemptRow }
  | { kind: 'fail'; job: ClaimedJob; error: string; outcome: FailOutcome; run?: AttemptRow }
  | { kind: 'cancel'; job: ClaimedJob; run?: AttemptRow }
  | { kind: 'release'; job: ClaimedJob };

/** A held job the worker started (its lease was taken by a claim that left it `prefetched`). */
export interface StartNotice {
  job: ClaimedJob;
  startedAt: number;
}

export interface ClaimOptions {
  /** Settlements to apply before claiming (like BullMQ's "complete and fetch next"). */
  settle?: readonly Settlement[];
  /**
   * Jobs started since the last claim and still running: they turn from prefetched to active. (A job
   * that ended meanwhile needs none: its settlement carries its start, in its row.)
   */
  started?: readonly StartNotice[];
  queues: readonly QueueName[];
  max: number;
  /** At most this many of the claimed jobs may come from queues other than high_priority (the reserved slot). */
  maxNonHigh?: number;
  /**
   * Of `max` (and of `maxNonHigh`), how many jobs the worker may hold without starting them (its prefetch
   * room; default 0): the rest are free slots. A backend may lease that many ahead; BullMQ leases only for
   * free slots, and uses the room for a job a completion fetched whose slot a high_priority job found by
   * the same claim took. With no room, nothing is leased that might not start.
   */
  room?: number;
  /**
   * Queues the worker found empty, whose wait for work (waitForWork) has been in progress since and has not
   * ended: nothing was added there that no worker heard of. A backend whose waits end on any process's
   * enqueue (BullMQ's markers) need not ask them again; the embedded engine asks every queue.
   */
  emptyQueues?: readonly QueueName[];
  workerId: string;
}

/**
 * Tracing of jobs, implemented by the telemetry layer and handed in by the composition roots (absent:
 * no tracing, no cost). The job system only carries the opaque context string these hooks make: stored
 * with the job at enqueue, returned with each claim, and sent to the sandbox child that runs an attempt.
 */
export interface JobSpans {
  /** Runs `send` inside a producer span; `send` gets the requests stamped with the context their attempts continue. */
  enqueue(
    reqs: readonly EnqueueRequest[],
    send: (stamped: EnqueueRequest[]) => Promise<EnqueueResult[]>,
  ): Promise<EnqueueResult[]>;
  /** Runs one attempt inside its consumer span (continuing `job.trace`), ended as the settlement says. */
  attempt(job: ClaimedJob, run: () => Promise<Settlement | undefined>): Promise<Settlement | undefined>;
  /** The active span's context, for a sandbox child to continue (undefined outside a traced attempt). */
  current(): string | undefined;
  /** In a sandbox child: runs a task inside a span that continues the worker's attempt (`trace`). */
  sandboxed<T>(
    task: { id: string; name: string; attempt: number },
    trace: string | undefined,
    run: () => Promise<T>,
  ): Promise<T>;
}

/** The enqueue role: what producers (services, routes, the CLI, tasks scheduling tasks) use. */
export interface JobProducer {
  readonly backend: 'sqlite' | 'bullmq';
  enqueue(req: EnqueueRequest): Promise<EnqueueResult>;
  /** Many jobs in one transaction (embedded) or pipeline (BullMQ). */
  enqueueBulk(reqs: readonly EnqueueRequest[]): Promise<EnqueueResult[]>;
}

/** The inspection and administration role: the task API, the dashboard, maintenance, and job events. */
export interface JobAdmin {
  readonly backend: 'sqlite' | 'bullmq';
  get(id: string): Promise<Job | null>;
  list(filter: ListJobsFilter): Promise<JobPage>;
  counts(): Promise<QueueCounts[]>;
  /** Waiting/delayed → cancelled; an active job is asked to stop (its signal aborts) and ends cancelled (see state-rules.ts). */
  cancel(id: string): Promise<Job>;
  /** failed, dead or cancelled → waiting with a fresh attempt budget (redrive; see state-rules.ts). */
  retry(id: string): Promise<Job>;
  pause(queue: QueueName): Promise<void>;
  resume(queue: QueueName): Promise<void>;
  /**
   * When the count limit of the retention (JOBS_KEEP_LAST) applies to finished jobs: as each finishes
   * (BullMQ), or at the next prune (embedded); `GET /queues` says which, since its counts differ meanwhile.
   */
  readonly keepLastApplies: 'at-completion' | 'at-cleanup';
  /** Removes finished jobs beyond the retention: each queue and final state keeps at most its newest `keepLast`, and none older than `maxAgeMs`. */
  prune(opts: { keepLast: number; maxAgeMs: number }): Promise<number>;
  listWorkers(): Promise<WorkerRecord[]>;
  /** Attempt rows of a task still in the job store, not yet moved to task_runs (see task-runs.ts). */
  pendingRuns(taskId: string): Promise<AttemptRow[]>;
  on<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void;
  off<E extends JobEventName>(event: E, listener: (...args: JobEventMap[E]) => void): void;
}

/** What a heartbeat found about the jobs the worker holds. */
export interface HeartbeatResult {
  /** Jobs someone asked to cancel. */
  cancel: string[];
  /** Jobs whose lease this worker no longer holds (expired and taken back, or held by another worker): their attempts must stop. */
  lost: string[];
}

/**
 * The leasing and settlement role: what the worker runtime uses. Attempt rows stored with settlements
 * and recoveries wait in the job store until the recorder moves them (RunStore).
 */
export interface JobLeasing extends RunStore {
  readonly backend: 'sqlite' | 'bullmq';
  /**
   * Claims the worker runtime may keep in flight at once (default 1). A backend whose claim waits on
   * a server gains by overlapping one claim's round trip with the jobs of another; each claim then
   * covers its share of the free slots, and priority order holds because every claim takes the best
   * ready jobs when the server runs it and the runtime merges each claim with its held jobs.
   */
  readonly claimsInFlight?: number;
  /**
   * Leases up to `max` ready jobs in strict priority order: the highest-ranked
   * non-paused queue first, then job priority, then FIFO. Never blocks.
   */
  claim(opts: ClaimOptions): Promise<ClaimedJob[]>;
  /**
   * Optional: hears cancel requests as they are made, in any process (BullMQ: over pub/sub; embedded:
   * through the wake-up channel), so an active job's signal aborts at once; the heartbeat still finds
   * every request within a second. Returns the unsubscribe function.
   */
  onCancelRequested?(listener: (jobId: string) => void): () => void;
  /** Resolves when work may be available for `queues` (an in-process enqueue, a poll, or the timeout). */
  waitForWork(queues: readonly QueueName[], timeoutMs: number, signal: AbortSignal): Promise<void>;
  /**
   * Renews the leases of the jobs this worker holds, checking that each lease is still this worker's
   * (as BullMQ's extendLock checks the lock's token), and publishes its record.
   */
  heartbeat(record: WorkerRecord, jobs: readonly ClaimedJob[]): Promise<HeartbeatResult>;
  progress(job: ClaimedJob, workerId: string, progress: number): Promise<void>;
  complete(job: ClaimedJob, workerId: string, result: unknown): Promise<void>;
  fail(job: ClaimedJob, workerId: string, error: string, outcome: FailOutcome): Promise<void>;
  /** Ends an active job as cancelled. */
  cancelActive(job: ClaimedJob, workerId: string): Promise<void>;
  /** Returns a leased job to its queue without counting the attempt (graceful shutdown). */
  release(job: ClaimedJob, workerId: string): Promise<void>;
  /**
   * Optional: a token that changes whenever work may have become ready. With it,
   * a worker holding prefetched jobs can start them without a claim while
   * nothing new arrived (see the worker runtime); without it, it always claims.
   */
  version?(): string;
  /**
   * Returns jobs whose lease expired to their queue (or marks them dead after too many stalls, or ends
   * those asked to cancel), stores each lost attempt's row in the same transaction (embedded) or MULTI
   * (BullMQ), and reports the attempts so lost.
   */
  recoverStalled(): Promise<StalledAttempt[]>;
  removeWorker(workerId: string): Promise<void>;
}

/**
 * A backend: every role, plus closing it. Only composition roots hold the whole of it; everything
 * else takes the role it needs (as BullMQ splits Queue, QueueGetters and Worker).
 */
export interface JobQueue extends JobProducer, JobAdmin, JobLeasing {
  /** Flushes pending writes and closes connections, waiting at most `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

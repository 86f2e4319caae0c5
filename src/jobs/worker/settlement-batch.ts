/**
 * Settlement batching: finished attempts' outcomes (complete, fail, cancel, release) wait here and ride
 * on the worker's next claim, so an outcome and the next lease share one transaction (embedded) or one
 * script call (BullMQ's "complete and fetch next"). An outcome no claim picks up within a few ms is
 * committed alone. A job stays leased (and covered by heartbeats) until its outcome is committed.
 *
 * Starts ride the same way: a claim leaves its jobs `prefetched`; a job started and still running at the
 * next claim (or flush) is noted active then. A job that ended first needs no note: its outcome carries
 * its start. So a no-op job costs no extra write, and a long one reads as active within a few ms.
 */
import type { Logger } from 'pino';
import type { ClaimedJob, JobLeasing, QueueName, Settlement, StartNotice } from '../types.js';

export class SettlementBatch {
  private pending: Settlement[] = [];
  /** Started jobs not yet noted active, by id. */
  private starts = new Map<string, StartNotice>();
  private readonly waiting = new Map<string, () => void>();
  private flushChain: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly leasing: Pick<JobLeasing, 'claim'>,
    private readonly queues: readonly QueueName[],
    private readonly workerId: string,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.pending.length;
  }

  /** The jobs whose outcome is not committed yet (their leases still need renewing). */
  jobs() {
    return this.pending.map((st) => st.job);
  }

  /** A job started: noted active with the next claim or flush, unless it ends first. */
  started(job: ClaimedJob, startedAt: number): void {
    this.starts.set(job.id, { job, startedAt });
    this.flushSoon();
  }

  /** A started job ended (its outcome, if any, carries its start). */
  ended(job: ClaimedJob): void {
    this.starts.delete(job.id);
  }

  /**
   * The start notes to carry, once: all of them, or (`startedBy`, epoch ms) those of jobs started by then.
   * A claim passes a time a little before now: a job that ends within that time needs no note at all (its
   * outcome carries its start), and a short task would otherwise be noted by the claim that follows its
   * start (the flush within a few ms notes the others).
   */
  takeStarts(startedBy = Infinity): StartNotice[] | undefined {
    if (this.starts.size === 0) return undefined;
    const out: StartNotice[] = [];
    for (const n of this.starts.values()) if (n.startedAt <= startedBy) out.push(n);
    for (const n of out) this.starts.delete(n.job.id);
    return out.length > 0 ? out : undefined;
  }

  /**
   * A claim carrying `notes` failed: they wait for the next one. (A note for a job that ended meanwhile
   * changes nothing: the backend notes only jobs still active and not yet started.)
   */
  putBackStarts(notes: readonly StartNotice[] | undefined): void {
    for (const n of notes ?? []) if (!this.starts.has(n.job.id)) this.starts.set(n.job.id, n);
  }

  /** Hands a finished job's outcome over; resolves once it is committed. */
  submit(st: Settlement): Promise<void> {
    this.starts.delete(st.job.id);
    return new Promise((resolve) => {
      this.waiting.set(st.job.id, resolve);
      this.pending.push(st);
    });
  }

  /** Takes up to `max` outcomes (all by default) for a claim to carry. */
  take(max = this.pending.length): Settlement[] {
    return this.pending.splice(0, max);
  }

  /** A claim carrying `settle` failed: they go back first in line. */
  putBack(settle: Settlement[]): void {
    this.pending.unshift(...settle);
  }

  /** A claim committed `settle`: their submitters resolve; a pending timer flush is no longer needed when nothing is left. */
  committed(settle: readonly Settlement[]): void {
    for (const st of settle) {
      this.waiting.get(st.job.id)?.();
      this.waiting.delete(st.job.id);
    }
    if (settle.length > 0 && this.pending.length === 0 && this.starts.size === 0) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
  }

  /** Commits pending outcomes within a few ms when no claim will carry them. */
  flushSoon(): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, 5);
  }

  /**
   * Commits pending outcomes without claiming. Calls are chained: a flush returns only after every earlier
   * one has committed, so stop() never exits while a timer-started flush is still writing.
   */
  flush(): Promise<void> {
    const next = this.flushChain.then(() => this.commit());
    // The caller sees a failure through `next`; the chain itself must stay usable.
    this.flushChain = next.catch(() => undefined);
    return next;
  }

  stopTimer(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private async commit(): Promise<void> {
    const settle = this.pending.splice(0);
    const started = this.takeStarts();
    if (settle.length === 0 && !started) return;
    try {
      await this.leasing.claim({
        settle,
        ...(started ? { started } : {}),
        queues: this.queues,
        max: 0,
        workerId: this.workerId,
      });
    } catch (err) {
      this.putBackStarts(started);
      this.logger.error(
        { err, jobs: settle.length },
        'could not commit finished jobs; their leases will expire and they run again',
      );
    }
    this.committed(settle);
  }
}

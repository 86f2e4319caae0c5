/**
 * Settlement batching: finished attempts' outcomes (complete, fail, cancel, release) wait here and ride
 * on the worker's next claim, so an outcome and the next lease share one transaction (embedded) or one
 * script call (BullMQ's "complete and fetch next"). An outcome no claim picks up within a few ms is
 * committed alone. A job stays leased (and covered by heartbeats) until its outcome is committed.
 */
import type { Logger } from 'pino';
import type { JobLeasing, QueueName, Settlement } from '../types.js';

export class SettlementBatch {
  private pending: Settlement[] = [];
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

  /** Hands a finished job's outcome over; resolves once it is committed. */
  submit(st: Settlement): Promise<void> {
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
    if (settle.length > 0 && this.pending.length === 0) {
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
    if (settle.length === 0) return;
    try {
      await this.leasing.claim({ settle, queues: this.queues, max: 0, workerId: this.workerId });
    } catch (err) {
      this.logger.error(
        { err, jobs: settle.length },
        'could not commit finished jobs; their leases will expire and they run again',
      );
    }
    this.committed(settle);
  }
}

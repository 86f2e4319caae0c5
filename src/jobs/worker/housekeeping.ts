/**
 * A worker's housekeeping: heartbeats (publish its record, renew the leases of every job it holds, hear
 * cancels and lost leases), the recovery of stalled jobs (dead workers' jobs back to their queues, with
 * a `task_runs` row for each lost attempt) and the scheduling of maintenance.cleanup.
 */
import type { Logger } from 'pino';
import type { TaskRegistry } from '../registry.js';
import type { ClaimedJob, HeartbeatResult, JobLeasing, JobProducer, WorkerRecord } from '../types.js';
import type { AttemptRecords } from './attempt-records.js';

export interface HousekeepingOptions {
  leasing: JobLeasing;
  registry: TaskRegistry;
  records: AttemptRecords;
  logger: Logger;
  workerId: string;
  heartbeatMs: number;
  leaseMs: number;
  /** Schedules maintenance.cleanup every `intervalMs` through `producer` (absent: never). */
  cleanup?: { producer: JobProducer; intervalMs: number };
  now: () => number;
  /** The worker's record and the jobs it holds, at each heartbeat. */
  record: () => WorkerRecord;
  held: () => ClaimedJob[];
  /** Acts on a heartbeat's findings (cancel requests, lost leases). */
  onHeartbeat: (found: HeartbeatResult) => void;
}

export class Housekeeping {
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: HousekeepingOptions) {}

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.beat(), this.o.heartbeatMs);
    void this.beat();
    // Every second (or half a lease, if shorter): a dead worker's jobs are back within about a second of its
    // death being known (embedded: at once for a process gone from this machine; see docs/jobs.md).
    const stallEvery = Math.max(200, Math.min(1000, Math.floor(this.o.leaseMs / 2)));
    this.stallTimer = setInterval(() => void this.recover(), stallEvery);
    void this.recover();
    const cleanup = this.o.cleanup;
    if (cleanup && cleanup.intervalMs > 0 && this.o.registry.get('maintenance.cleanup')) {
      const schedule = () => void this.scheduleCleanup(cleanup.producer, cleanup.intervalMs);
      this.cleanupTimer = setInterval(schedule, cleanup.intervalMs);
      schedule();
    }
  }

  stop(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.stallTimer);
    clearInterval(this.cleanupTimer);
  }

  private async beat(): Promise<void> {
    try {
      this.o.onHeartbeat(await this.o.leasing.heartbeat(this.o.record(), this.o.held()));
    } catch (err) {
      this.o.logger.warn({ err, worker: this.o.workerId }, 'heartbeat failed');
    }
  }

  /** Returns stalled jobs to their queues and writes the `task_runs` row of each lost attempt. */
  private async recover(): Promise<void> {
    let lost;
    try {
      lost = await this.o.leasing.recoverStalled();
    } catch (err) {
      this.o.logger.warn({ err }, 'stalled-job check failed');
      return;
    }
    if (lost.length === 0) return;
    this.o.logger.warn(
      { jobs: lost.length, dead: lost.filter((a) => a.dead).length, worker: this.o.workerId },
      'returned stalled jobs to their queues',
    );
    const found = this.o.now();
    for (const a of lost) this.o.records.lost(a, found);
  }

  private async scheduleCleanup(producer: JobProducer, everyMs: number): Promise<void> {
    try {
      // One cleanup per interval across all workers: the idempotency key names the interval.
      const slot = Math.floor(this.o.now() / everyMs);
      await producer.enqueue(
        this.o.registry.request(
          'maintenance.cleanup',
          {},
          { idempotencyKey: `maintenance.cleanup:${everyMs}:${slot}` },
        ),
      );
    } catch (err) {
      this.o.logger.warn({ err }, 'could not schedule maintenance.cleanup');
    }
  }
}

import os from 'node:os';
import type { Logger } from 'pino';
import type { Db } from '../db/types.js';
import type { LiveRecorder } from './live-recorder.js';

/** Rows older than this are pruned: the longest summary window (1 h) with room to spare. */
export const SAMPLE_RETENTION_MS = 2 * 3_600_000;

export interface LivePublisherOptions {
  db: Db;
  recorder: LiveRecorder;
  intervalMs: number;
  logger: Pick<Logger, 'warn'>;
  /** Runs before each interval is taken (figures read from elsewhere, such as the cache's counters). */
  beforeTake?: () => Promise<void>;
  /** This process's name in the rows (default host:pid:random). */
  process?: string;
  now?: () => number;
}

/**
 * Publishes what this process measured, one `telemetry_samples` row per interval with
 * something in it, to the database every process shares (SQLite file in embedded mode,
 * PostgreSQL in distributed mode); the live summary merges every process's rows. A failed
 * write is logged (at most once a minute) and that interval is dropped: figures never pile up.
 */
export class LivePublisher {
  readonly process: string;
  private timer: NodeJS.Timeout | undefined;
  private start: number;
  private chain: Promise<void> = Promise.resolve();
  private lastErrorLog = 0;
  private publishes = 0;
  private readonly now: () => number;
  private role: string | undefined;

  constructor(private readonly opts: LivePublisherOptions) {
    this.now = opts.now ?? Date.now;
    this.process =
      opts.process ?? `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.start = this.now();
  }

  /** Starts publishing every interval as `role` (api, worker, or all for `omnivibe start`). */
  begin(role: 'api' | 'worker' | 'all'): this {
    this.role = this.role && this.role !== role ? 'all' : role;
    if (this.timer) return this;
    // What was measured before (start-up, migrations) belongs to no interval.
    this.opts.recorder.take();
    this.start = this.now();
    this.timer = setInterval(() => void this.publish(), this.opts.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Publishes the interval so far (calls are chained, so rows never overlap in time). */
  publish(): Promise<void> {
    this.chain = this.chain.then(() => this.publishOnce());
    return this.chain;
  }

  private async publishOnce(): Promise<void> {
    const role = this.role;
    if (role === undefined) return;
    try {
      await this.opts.beforeTake?.();
      const figures = this.opts.recorder.take();
      const start = this.start;
      const end = this.now();
      this.start = end;
      if (figures) {
        await this.opts.db
          .insertInto('telemetry_samples')
          .values({
            process: this.process,
            role,
            start_ms: start,
            end_ms: end,
            figures: JSON.stringify(figures),
          })
          .execute();
      }
      // Each process prunes now and then; a delete by the indexed end time is cheap.
      if (++this.publishes % 30 === 1)
        await this.opts.db
          .deleteFrom('telemetry_samples')
          .where('end_ms', '<', end - SAMPLE_RETENTION_MS)
          .execute();
    } catch (err) {
      if (this.now() - this.lastErrorLog >= 60_000) {
        this.lastErrorLog = this.now();
        this.opts.logger.warn({ err }, 'could not publish live figures; this interval is dropped');
      }
    }
  }

  /** Stops the timer and publishes what is left (nothing when it never began). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.publish();
    this.role = undefined;
  }
}

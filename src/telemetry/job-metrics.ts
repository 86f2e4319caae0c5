import type { Logger } from 'pino';
import type { SandboxObserver } from '../jobs/sandbox/sandbox-pool.js';
import type { AttemptRow } from '../jobs/task-runs.js';
import type { JobAdmin } from '../jobs/types.js';
import { JOB_STATES } from '../jobs/types.js';
import type { LiveRecorder } from './live-recorder.js';
import { applyMediaReport } from './media-reports.js';
import type { JobOutcome, Metrics } from './metrics.js';

/** A lost attempt past the stall limit is recorded failed with this error prefix (see the worker runtime). */
const STALLED = 'stalled:';

export function jobOutcome(row: Pick<AttemptRow, 'status' | 'error'>): JobOutcome {
  switch (row.status) {
    case 'succeeded':
      return 'completed';
    case 'retrying':
      return 'retried';
    case 'cancelled':
      return 'cancelled';
    default:
      return row.error?.startsWith(STALLED) ? 'dead' : 'failed';
  }
}

/**
 * Counts and times every attempt the worker records (the one place that sees each attempt's outcome,
 * wait and run time, in-process or sandboxed): the worker's attempt observer.
 */
export function attemptMetrics(metrics: Metrics): (row: AttemptRow) => void {
  return (row) =>
    metrics.jobFinished(
      row.queue,
      row.name,
      jobOutcome(row),
      row.started === null ? null : Math.max(0, row.started - row.enqueued) / 1000,
      row.started === null ? null : Math.max(0, row.finished - row.started) / 1000,
    );
}

/** Queue depth by state and the oldest waiting job's age per queue, read from the queue at each scrape. */
export function queueDepthSource(metrics: Metrics, queue: Pick<JobAdmin, 'counts'>): () => Promise<void> {
  return async () => {
    for (const c of await queue.counts()) {
      for (const state of JOB_STATES) metrics.queueDepth.set({ queue: c.queue, state }, c.counts[state]);
      metrics.queueOldestWaiting.set({ queue: c.queue }, c.oldestWaitingMs / 1000);
    }
  };
}

/** Each queue's waiting jobs and oldest wait, sampled into the live figures when an interval is published. */
export function liveQueueSource(live: LiveRecorder, queue: Pick<JobAdmin, 'counts'>): () => Promise<void> {
  return async () => {
    for (const c of await queue.counts())
      live.queue(c.queue, { waiting: c.counts.waiting, oldest_s: c.oldestWaitingMs / 1000 });
  };
}

/** Busy and free task slots of this process's worker, at each scrape. */
export function workerSlotsSource(
  metrics: Metrics,
  worker: { readonly active: number; readonly concurrency: number },
): () => void {
  return () => {
    metrics.workerSlots.set({ state: 'busy' }, worker.active);
    metrics.workerSlots.set({ state: 'free' }, Math.max(0, worker.concurrency - worker.active));
  };
}

/**
 * The worker's sandbox pool into the metrics: children started and recycled, and what the
 * children report (vendor calls, narrations, renders), counted as if measured here. A report of
 * an unknown shape is logged (a child of another version), never thrown.
 */
export function sandboxMetrics(metrics: Metrics, logger: Pick<Logger, 'warn'>): SandboxObserver {
  return {
    childStarted: () => metrics.sandboxChildStarted(),
    childRecycled: (reason) => metrics.sandboxChildRecycled(reason),
    report(report) {
      if (!applyMediaReport(metrics, report)) logger.warn({ report }, 'sandbox child sent an unknown report');
    },
  };
}

/**
 * What happens to a job after an attempt that threw: a pure function of the error, the attempt and the
 * job's retry settings (the jitter's randomness is passed in).
 */
import { backoffDelayMs, MAX_BACKOFF_MS } from '../backoff.js';
import type { ErrorInfo } from '../errors.js';
import type { BackoffOptions } from '../types.js';

/** The name of the abort reason a worker gives its attempts when it stops at once. */
export const SHUTDOWN_ABORT = 'ShutdownAbort';
/** The name of the abort reason of an attempt whose lease this worker lost. */
export const LEASE_LOST = 'LeaseLost';

export type AttemptVerdict =
  /** Cancelled by an operator: the job ends cancelled. */
  | { kind: 'cancelled' }
  /** The worker stops at once: the attempt does not count, the job goes back to its queue. */
  | { kind: 'released' }
  /** The lease was lost (the job went back, or another worker holds it): this worker settles nothing. */
  | { kind: 'lost' }
  /** No attempt left, or an error that retrying cannot fix. */
  | { kind: 'failed' }
  | { kind: 'retrying'; delayMs: number };

export interface RetrySettings {
  /** The attempt that failed, 1 for the first. */
  attempt: number;
  maxAttempts: number;
  backoff: BackoffOptions;
}

/**
 * - cancelled → `cancelled`; the worker's own stop → `released`; a lost lease → `lost`;
 * - a permanent error (PermanentError, an invalid payload, an unknown task) or the last attempt → `failed`;
 * - a RetryAfterError → `retrying` after its delay, within [0, 600 s];
 * - anything else → `retrying` after the exponential back-off with jitter (see backoff.ts).
 */
export function retryVerdict(
  error: ErrorInfo,
  job: RetrySettings,
  random: () => number = Math.random,
): AttemptVerdict {
  if (error.cancelled) return { kind: 'cancelled' };
  if (error.name === SHUTDOWN_ABORT) return { kind: 'released' };
  if (error.name === LEASE_LOST) return { kind: 'lost' };
  if (error.permanent || job.attempt >= job.maxAttempts) return { kind: 'failed' };
  const delayMs =
    error.retryAfterMs !== undefined
      ? Math.min(Math.max(0, error.retryAfterMs), MAX_BACKOFF_MS)
      : backoffDelayMs(job.attempt, job.backoff, random);
  return { kind: 'retrying', delayMs };
}

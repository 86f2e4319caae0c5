/** The retry policy alone: what follows a failed attempt, for every kind of error. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/jobs/backoff.js';
import {
  describeError,
  InvalidPayloadError,
  PermanentError,
  RetryAfterError,
  TaskCancelledError,
  TaskTimeoutError,
  UnknownTaskError,
} from '../../src/jobs/errors.js';
import { namedAbort } from '../../src/jobs/worker/lazy-abort.js';
import { LEASE_LOST, retryVerdict, SHUTDOWN_ABORT } from '../../src/jobs/worker/retry-policy.js';

const job = (attempt: number, maxAttempts = 3, backoff = DEFAULT_BACKOFF) => ({
  attempt,
  maxAttempts,
  backoff,
});
const err = (e: unknown) => describeError(e);

describe('retry policy', () => {
  it('retries a transient error after the back-off: [d/2, d] with d = base × 2^(n-1)', () => {
    expect(retryVerdict(err(new Error('x')), job(1), () => 0)).toEqual({ kind: 'retrying', delayMs: 500 });
    expect(retryVerdict(err(new Error('x')), job(1), () => 1)).toEqual({ kind: 'retrying', delayMs: 1000 });
    expect(retryVerdict(err(new Error('x')), job(2), () => 1)).toEqual({ kind: 'retrying', delayMs: 2000 });
    expect(
      retryVerdict(err(new Error('x')), job(2, 3, { ...DEFAULT_BACKOFF, jitter: false }), () => 0),
    ).toEqual({
      kind: 'retrying',
      delayMs: 2000,
    });
  });

  it('caps the back-off at 600 s, and at the task cap', () => {
    expect(retryVerdict(err(new Error('x')), job(30, 40), () => 1)).toEqual({
      kind: 'retrying',
      delayMs: 600_000,
    });
    const capped = { baseMs: 1000, capMs: 5000, jitter: false };
    expect(retryVerdict(err(new Error('x')), job(10, 20, capped))).toEqual({
      kind: 'retrying',
      delayMs: 5000,
    });
  });

  it('fails on the last attempt, and at once on a permanent error, an invalid payload or an unknown task', () => {
    expect(retryVerdict(err(new Error('x')), job(3, 3))).toEqual({ kind: 'failed' });
    expect(retryVerdict(err(new Error('x')), job(1, 1))).toEqual({ kind: 'failed' });
    expect(retryVerdict(err(new PermanentError('no')), job(1))).toEqual({ kind: 'failed' });
    expect(retryVerdict(err(new InvalidPayloadError('bad', ['x'])), job(1))).toEqual({ kind: 'failed' });
    expect(retryVerdict(err(new UnknownTaskError('nope')), job(1))).toEqual({ kind: 'failed' });
  });

  it('waits what a RetryAfterError asks, within [0, 600 s], unless it was the last attempt', () => {
    expect(retryVerdict(err(new RetryAfterError('later', 1234)), job(1))).toEqual({
      kind: 'retrying',
      delayMs: 1234,
    });
    expect(retryVerdict(err(new RetryAfterError('later', -5)), job(1))).toEqual({
      kind: 'retrying',
      delayMs: 0,
    });
    expect(retryVerdict(err(new RetryAfterError('later', 9e9)), job(1))).toEqual({
      kind: 'retrying',
      delayMs: 600_000,
    });
    expect(retryVerdict(err(new RetryAfterError('later', 10)), job(3, 3))).toEqual({ kind: 'failed' });
  });

  it('retries a timeout like any transient error', () => {
    expect(retryVerdict(err(new TaskTimeoutError('slow', 'hard')), job(1), () => 1)).toEqual({
      kind: 'retrying',
      delayMs: 1000,
    });
  });

  it('ends a cancelled attempt as cancelled, one stopped by shutdown as released, one that lost its lease as lost', () => {
    expect(retryVerdict(err(new TaskCancelledError()), job(1))).toEqual({ kind: 'cancelled' });
    expect(retryVerdict(err(namedAbort(SHUTDOWN_ABORT, 'bye')), job(3, 3))).toEqual({ kind: 'released' });
    expect(retryVerdict(err(namedAbort(LEASE_LOST, 'gone')), job(3, 3))).toEqual({ kind: 'lost' });
  });

  it('is a pure function: the same inputs give the same verdict', () => {
    const e = err(new Error('x'));
    const r = () => 0.37;
    expect(retryVerdict(e, job(2), r)).toEqual(retryVerdict(e, job(2), r));
  });
});

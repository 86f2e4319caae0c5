/**
 * Errors a task handler throws to say what happens next (BullMQ-style):
 * any other error is retried with the task's back-off until attempts run out.
 */

/** Give up now: the job fails without further attempts (bad input, a 4xx from a vendor...). */
export class PermanentError extends Error {
  readonly code: string = 'TASK_PERMANENT_FAILURE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** Retry after an explicit delay instead of the back-off (a vendor's Retry-After, a lock held elsewhere). */
export class RetryAfterError extends Error {
  readonly code = 'TASK_RETRY_AFTER';
  constructor(
    message: string,
    /** Delay before the next attempt, ms (still capped at the back-off cap). */
    readonly delayMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryAfterError';
  }
}

/** The payload does not match the task's schema: failed once, never retried. */
export class InvalidPayloadError extends PermanentError {
  override readonly code: string = 'TASK_INVALID_PAYLOAD';
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
    this.name = 'InvalidPayloadError';
  }
}

/** The soft timeout fired (the handler's AbortSignal aborted) or the hard timeout killed its child. */
export class TaskTimeoutError extends Error {
  readonly code = 'TASK_TIMEOUT';
  constructor(
    message: string,
    readonly kind: 'soft' | 'hard',
  ) {
    super(message);
    this.name = 'TaskTimeoutError';
  }
}

/** A task name nobody registered (the job fails once: no worker will ever know it). */
export class UnknownTaskError extends PermanentError {
  constructor(name: string) {
    super(`no task named ${name} is registered`);
    this.name = 'UnknownTaskError';
  }
}

/** The job was cancelled while it ran. */
export class TaskCancelledError extends Error {
  readonly code = 'TASK_CANCELLED';
  constructor() {
    super('the job was cancelled');
    this.name = 'TaskCancelledError';
  }
}

/** Serialisable description of an error, for job rows, task_runs and child-process messages. */
export interface ErrorInfo {
  name: string;
  message: string;
  permanent: boolean;
  retryAfterMs?: number;
  timeout?: 'soft' | 'hard';
  cancelled?: boolean;
}

export function describeError(err: unknown): ErrorInfo {
  if (err instanceof RetryAfterError)
    return { name: err.name, message: err.message, permanent: false, retryAfterMs: err.delayMs };
  if (err instanceof PermanentError) return { name: err.name, message: err.message, permanent: true };
  if (err instanceof TaskTimeoutError)
    return { name: err.name, message: err.message, permanent: false, timeout: err.kind };
  if (err instanceof TaskCancelledError)
    return { name: err.name, message: err.message, permanent: true, cancelled: true };
  if (err instanceof Error) return { name: err.name, message: err.message, permanent: false };
  return { name: 'Error', message: String(err), permanent: false };
}

/**
 * An idempotency key already names a task of another name. Nothing of the
 * request is enqueued (the API answers 409): returning the other task would
 * tell the caller that its own task exists.
 */
export class IdempotencyConflictError extends Error {
  readonly code = 'TASK_IDEMPOTENCY_CONFLICT';
  constructor(
    readonly idempotencyKey: string,
    /** The task that has the key, and its name. */
    readonly taskId: string,
    readonly taskName: string,
    /** The name asked for, and the position of that request in its batch (0 for one). */
    readonly requestedName: string,
    readonly index: number,
  ) {
    super(
      `idempotency key ${idempotencyKey} already names task ${taskId} (${taskName}), not a ${requestedName}`,
    );
    this.name = 'IdempotencyConflictError';
  }
}

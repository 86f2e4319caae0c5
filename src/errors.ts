/**
 * The error catalogue. Every error the API returns has a stable `code`, an HTTP
 * status, and optional `details`; the API writes them as
 * `{ "error": { "code", "message", "details" } }` in one place (api/plugins/errors.ts).
 * Tests assert on `code`, never on message text.
 */
export const ErrorCodes = {
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  INVALID_CURSOR: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CLIENT_NOT_FOUND: 404,
  CAMPAIGN_NOT_FOUND: 404,
  CONTENT_NOT_FOUND: 404,
  SCRIPT_BLOCK_NOT_FOUND: 404,
  API_KEY_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE: 422,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  DATABASE_UNAVAILABLE: 503,
  TASK_NOT_FOUND: 404,
  TASK_UNKNOWN: 400,
  TASK_STATE_CONFLICT: 409,
  IDEMPOTENCY_KEY_CONFLICT: 409,
  QUEUE_UNAVAILABLE: 503,
  CACHE_KEY_NOT_FOUND: 404,
  CACHE_UNAVAILABLE: 503,
  AUDIO_GENERATION_NOT_FOUND: 404,
  RENDER_NOT_FOUND: 404,
  MEDIA_FILE_NOT_FOUND: 404,
  RANGE_NOT_SATISFIABLE: 416,
  ASSET_NOT_FOUND: 404,
  ASSET_IN_USE: 409,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Seconds the client should wait before retrying (sets `Retry-After`). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'AppError';
    this.status = ErrorCodes[code];
  }
}

export const notFound = (code: ErrorCode, what: string, id: number | string) =>
  new AppError(code, `${what} ${id} does not exist`, { id });

export const validationFailed = (field: string, message: string) =>
  new AppError('VALIDATION_FAILED', `${field}: ${message}`, { field });

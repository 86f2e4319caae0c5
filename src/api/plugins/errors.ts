import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { DbErrorKind } from '../../db/db-errors.js';
import { AppError, type ErrorCode, ErrorCodes } from '../../errors.js';

/** Seconds clients are asked to wait while the database is unreachable. */
const DB_RETRY_AFTER_S = 2;

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** The offending field of a schema validation failure, as a dotted path. */
function fieldOf(issue: ValidationIssue | undefined): string {
  if (!issue) return '';
  const base = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  const extra =
    (issue.params?.missingProperty as string | undefined) ??
    (issue.params?.additionalProperty as string | undefined);
  return [base, extra].filter((p) => p !== undefined && p !== '').join('.');
}

/** Tells which database failure an error is (the database layer's knowledge, passed in by the composition root). */
export type ClassifyDbError = (err: unknown) => DbErrorKind | undefined;

/** Maps any error to the catalogue: the one place errors become HTTP responses. */
export function toAppError(err: unknown, classifyDbError: ClassifyDbError): AppError {
  if (err instanceof AppError) return err;
  const fe = err as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (fe.validation) {
    const issue = fe.validation[0];
    const field = fieldOf(issue);
    const reason =
      issue?.keyword === 'additionalProperties' ? 'unknown field' : (issue?.message ?? 'is invalid');
    return new AppError(
      'VALIDATION_FAILED',
      `${fe.validationContext ?? 'request'}${field ? `.${field}` : ''}: ${reason}`,
      {
        location: fe.validationContext,
        field,
        reason,
      },
    );
  }
  switch (fe.code) {
    case 'FST_ERR_BAD_URL':
      return new AppError('VALIDATION_FAILED', 'the path is not valid percent-encoded UTF-8', {
        location: 'path',
      });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError('VALIDATION_FAILED', 'a path parameter is too long', { location: 'path' });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'request body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', 'send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('INVALID_JSON', 'request body is not valid JSON');
  }
  if (fe instanceof SyntaxError || fe.code === 'FST_ERR_CTP_INVALID_TYPE') {
    return new AppError('INVALID_JSON', 'request body is not valid JSON');
  }
  switch (classifyDbError(err)) {
    case 'unavailable':
      return new AppError(
        'DATABASE_UNAVAILABLE',
        'the database is unavailable; retry shortly',
        undefined,
        DB_RETRY_AFTER_S,
      );
    case 'unique':
      return new AppError('CONFLICT', 'a record with these values already exists');
    case 'foreign_key':
      return new AppError('UNPROCESSABLE', 'a referenced record does not exist');
    case 'check':
    case 'invalid_input':
      return new AppError('VALIDATION_FAILED', 'a value is out of range or malformed');
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = (Object.entries(ErrorCodes).find(([, s]) => s === status)?.[0] ??
      'VALIDATION_FAILED') as ErrorCode;
    return new AppError(code, fe.message);
  }
  return new AppError('INTERNAL', 'internal error');
}

export function sendError(reply: FastifyReply, err: AppError): FastifyReply {
  if (err.retryAfterS !== undefined)
    reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterS))));
  return reply.status(err.status).send({
    error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
  });
}

export function registerErrorHandling(app: FastifyInstance, classifyDbError: ClassifyDbError): void {
  app.setErrorHandler((err, request, reply) => {
    const appErr = toAppError(err, classifyDbError);
    if (appErr.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ code: appErr.code }, 'request rejected');
    return sendError(reply, appErr);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}

import type { Logger } from 'pino';
import type { QueryEvent } from '../db/database.js';
import type { Dialect } from '../db/types.js';
import type { DbOperation, Metrics } from './metrics.js';

const OPERATIONS = new Set<string>(['select', 'insert', 'update', 'delete']);

/** The statement's operation from its first keyword (a closed set: anything else is `other`). */
export function dbOperation(sql: string): DbOperation {
  const word = /^\s*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase() ?? '';
  return OPERATIONS.has(word) ? (word as DbOperation) : 'other';
}

/**
 * The database's `onQuery` hook: every statement's duration by dialect and operation; one slower
 * than `slowMs` is counted and logged at warn with its SQL text, never its parameters.
 */
export function dbQueryObserver(
  metrics: Metrics,
  dialect: Dialect,
  slowMs: number,
  logger: Pick<Logger, 'warn'>,
): (q: QueryEvent) => void {
  return (q) => {
    const operation = dbOperation(q.sql);
    const slow = q.durationMs >= slowMs;
    if (slow)
      logger.warn(
        { statement: q.sql, durationMs: Math.round(q.durationMs), dialect, slowQueryMs: slowMs },
        'slow database query',
      );
    metrics.dbQuery(dialect, operation, q.durationMs / 1000, slow, q.failed);
  };
}

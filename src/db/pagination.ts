import { type Expression, type SqlBool, sql } from 'kysely';
import { AppError } from '../errors.js';

/** Largest page any list endpoint returns. */
export const MAX_PAGE_LIMIT = 100;
export const DEFAULT_PAGE_LIMIT = 20;

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page; null on the last page. */
  next_cursor: string | null;
}

/** Keyset position in a `created_at DESC, id DESC` ordering. */
export interface TimeCursor {
  createdAt: string;
  id: number;
}

export function encodeCursor(c: TimeCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

export function decodeCursor(raw: string): TimeCursor {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      typeof parsed[0] === 'string' &&
      !Number.isNaN(Date.parse(parsed[0])) &&
      Number.isSafeInteger(parsed[1])
    ) {
      return { createdAt: new Date(parsed[0]).toISOString(), id: parsed[1] as number };
    }
  } catch (err) {
    throw new AppError('INVALID_CURSOR', 'cursor is not one this API issued', {
      field: 'cursor',
      reason: String(err),
    });
  }
  throw new AppError('INVALID_CURSOR', 'cursor is not one this API issued', { field: 'cursor' });
}

/** Turns `limit + 1` fetched rows into a page, with the cursor of its last row. */
export function toPage<T extends { created_at: string; id: number }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items,
    next_cursor:
      rows.length > limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
  };
}

/**
 * Rows strictly after `c` in `created_at DESC, id DESC` order. The redundant
 * `created_at <=` bound lets both engines seek the created_at index to the cursor.
 */
export function afterCursor(c: TimeCursor): Expression<SqlBool> {
  return sql<SqlBool>`created_at <= ${c.createdAt} and (created_at < ${c.createdAt} or (created_at = ${c.createdAt} and id < ${c.id}))`;
}

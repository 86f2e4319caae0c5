import { AppError } from '../errors.js';

export const MAX_JOB_PAGE = 100;
export const DEFAULT_JOB_PAGE = 20;

export const pageLimit = (limit: number | undefined) =>
  Math.min(Math.max(Math.trunc(limit ?? DEFAULT_JOB_PAGE), 1), MAX_JOB_PAGE);

/** Job lists are ordered newest first; the cursor is the position after the last item returned. */
export function encodeJobCursor(position: number): string {
  return Buffer.from(`j:${position}`).toString('base64url');
}

export function decodeJobCursor(raw: string): number {
  const m = /^j:(\d{1,15})$/.exec(Buffer.from(raw, 'base64url').toString('utf8'));
  if (!m) throw new AppError('INVALID_CURSOR', 'cursor is not one this API issued', { field: 'cursor' });
  return Number(m[1]);
}

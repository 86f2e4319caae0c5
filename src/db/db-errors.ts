/** What a database driver error means to a caller, on either dialect. */
export type DbErrorKind = 'unavailable' | 'unique' | 'foreign_key' | 'check' | 'invalid_input';

const PG_UNAVAILABLE_CLASSES = ['08', '53', '57', '58'];
const PG_CODES: Record<string, DbErrorKind> = {
  '23505': 'unique',
  '23503': 'foreign_key',
  '23514': 'check',
  '23502': 'check',
  '22P02': 'invalid_input',
  '22003': 'invalid_input',
  '22007': 'invalid_input',
  '22008': 'invalid_input',
  '22021': 'invalid_input',
  '22P05': 'invalid_input',
  '54000': 'invalid_input',
};
const NODE_NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);

/** Classifies an error from pg or better-sqlite3; undefined for anything else. */
export function classifyDbError(err: unknown): DbErrorKind | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_')) {
      if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'unique';
      if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return 'foreign_key';
      if (code.startsWith('SQLITE_CONSTRAINT')) return 'check';
      if (/^SQLITE_(BUSY|LOCKED|IOERR|CANTOPEN|FULL|READONLY|PROTOCOL)/.test(code)) return 'unavailable';
      return undefined;
    }
    if (NODE_NET_CODES.has(code)) return 'unavailable';
    if (/^[0-9A-Z]{5}$/.test(code)) {
      if (PG_CODES[code]) return PG_CODES[code];
      if (PG_UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) return 'unavailable';
      return undefined;
    }
  }
  // pg-pool and pg raise plain Errors when a connection cannot be made or is cut.
  if (
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(
      err.message,
    )
  ) {
    return 'unavailable';
  }
  return undefined;
}

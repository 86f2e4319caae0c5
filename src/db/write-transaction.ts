import { sql } from 'kysely';
import type { Db, Dialect } from './types.js';

/**
 * Runs `fn` in one transaction that other writers cannot interleave with,
 * committed when it returns and rolled back when it throws.
 *
 * - SQLite: `begin immediate`, so the database's write lock is held from the
 *   first statement (Kysely's own transaction sends a deferred `begin`, which
 *   takes the lock only at the first write and lets another process write
 *   between this transaction's reads and its writes). Within a process the
 *   single connection is held too, so nothing else in the process reaches the
 *   database until it ends: keep `fn` short.
 * - PostgreSQL: an ordinary (read committed) transaction; `fn` takes the row or
 *   advisory locks that order it against the writers it must exclude.
 *
 * Not nestable: `fn` must not open another transaction on `tx`.
 */
export async function writeTransaction<T>(db: Db, dialect: Dialect, fn: (tx: Db) => Promise<T>): Promise<T> {
  if (dialect === 'postgres') return db.transaction().execute(fn);
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (err) {
      // As Kysely's transaction does: a failed commit is rolled back too.
      await sql`rollback`.execute(conn);
      throw err;
    }
  });
}

/**
 * Everything the job system assumes about the SQL Kysely compiles, in one place: the task_runs recorder
 * reuses the text of a full batch's insert and binds new values to it (task-runs.ts). Building and
 * compiling a 500-row insert costs about as much as running it. Probed when the recorder is made; when the
 * compiled statement is not laid out as assumed (or JOBS_SHORTCUT_TASK_RUNS_SQL=off) every batch is built
 * through Kysely's query builder.
 */
import type { Kysely } from 'kysely';

/**
 * The SQL of an insert of `rows` rows into `table` with every one of `columns`, in that order (the
 * parameters are then the rows' values, row by row, column by column), skipping rows whose
 * `conflictColumn` value exists (`on conflict do nothing`), or what differs from that layout.
 */
export function compileBatchInsert<DB, T extends keyof DB & string>(
  db: Kysely<DB>,
  table: T,
  columns: readonly string[],
  template: Record<string, unknown>,
  rows: number,
  conflictColumn: string,
): { sql: string } | string {
  if (Object.keys(template).join() !== columns.join())
    return 'the template row does not list the columns in order';
  const compiled = db
    .insertInto(table)
    .values(Array.from({ length: rows }, () => template) as never)
    .onConflict((oc) => oc.column(conflictColumn as never).doNothing())
    .compile();
  if (compiled.parameters.length !== rows * columns.length)
    return `the statement binds ${compiled.parameters.length} values, not ${rows} × ${columns.length}`;
  const list = /^insert into "?[\w]+"? \(([^)]*)\) values /i.exec(compiled.sql)?.[1];
  const named = list?.split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
  if (named?.join() !== columns.join()) return 'the statement does not name the columns in order';
  if (!/ on conflict \("?\w+"?\) do nothing$/i.test(compiled.sql))
    return 'the statement does not end with its on conflict clause';
  return { sql: compiled.sql };
}

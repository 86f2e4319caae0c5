import { type Kysely, sql } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * `task_runs.run_key`: the identity of one attempt's row (`src/jobs/task-runs.ts`, `runKey`). Rows
 * are written first into the job store, in the same transaction (embedded) or pipeline (BullMQ) as
 * the attempt's outcome, and then moved here; a move repeated after a crash, or made by two workers
 * at once, inserts nothing twice (`on conflict (run_key) do nothing`). Rows written before this
 * migration have none (a unique index admits any number of nulls on both dialects).
 */
export async function up(db: Kysely<unknown>, _h: SchemaHelpers): Promise<void> {
  await sql`alter table task_runs add column run_key text`.execute(db);
  await sql`create unique index if not exists idx_task_runs_run_key on task_runs (run_key)`.execute(db);
}

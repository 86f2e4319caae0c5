import type { Kysely } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

/**
 * Observability (docs/observability.md):
 * - `telemetry_samples`: what each process measured per interval (HTTP, jobs, cache, database
 *   figures with mergeable latency sketches, as JSON), so the live summary covers every process;
 *   rows older than two hours are pruned by the processes that write them;
 * - `alerts`: every alert that fired, its value and threshold, when it resolved, and what each
 *   notification channel answered;
 * - `telemetry_leases`: one named lease per singleton duty (alert evaluation), so one process at a
 *   time does it however many run.
 */
export async function up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  await db.schema
    .createTable('telemetry_samples')
    .ifNotExists()
    .addColumn('id', 'integer', (c) =>
      h.dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey().generatedByDefaultAsIdentity(),
    )
    .addColumn('process', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('start_ms', 'bigint', (c) => c.notNull())
    .addColumn('end_ms', 'bigint', (c) => c.notNull())
    .addColumn('figures', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('idx_telemetry_samples_end_ms')
    .ifNotExists()
    .on('telemetry_samples')
    .column('end_ms')
    .execute();

  await h
    .table(db, 'alerts')
    .addColumn('rule', 'text', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(h.oneOf('state', ['firing', 'resolved'])))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('value', h.float)
    .addColumn('threshold', h.float, (c) => c.notNull())
    .addColumn('started_at', h.timestamp, (c) => c.notNull())
    .addColumn('resolved_at', h.timestamp)
    .addColumn('last_notified_at', h.timestamp)
    .addColumn('notifications', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema
    .createIndex('idx_alerts_state')
    .ifNotExists()
    .on('alerts')
    .columns(['state', 'rule'])
    .execute();
  await db.schema
    .createIndex('idx_alerts_started_at')
    .ifNotExists()
    .on('alerts')
    .column('started_at')
    .execute();

  await db.schema
    .createTable('telemetry_leases')
    .ifNotExists()
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_ms', 'bigint', (c) => c.notNull())
    .execute();
}

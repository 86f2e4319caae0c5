import type { Selectable } from 'kysely';
import type { AlertsTable, Db } from './types.js';

export type AlertRow = Selectable<AlertsTable>;

/** One delivery of a notification, as kept in an alert's history. */
export interface DeliveryRecord {
  kind: 'firing' | 'repeat' | 'resolved';
  channel: string;
  ok: boolean;
  at: string;
  attempts: number;
  error?: string;
}

/** The `alerts` history and the `telemetry_leases` that make one process evaluate them. */
export class AlertsRepo {
  constructor(private readonly db: Db) {}

  /**
   * Takes or renews the lease `name` for `holder` until `expiresMs`: succeeds when nobody holds it,
   * the holder is us, or the holder's lease ran out. One statement, so two processes never both win.
   */
  async lease(name: string, holder: string, nowMs: number, expiresMs: number): Promise<boolean> {
    const row = await this.db
      .insertInto('telemetry_leases')
      .values({ name, holder, expires_ms: expiresMs })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, expires_ms: expiresMs })
          .where((eb) =>
            eb.or([
              eb('telemetry_leases.holder', '=', holder),
              eb('telemetry_leases.expires_ms', '<', nowMs),
            ]),
          ),
      )
      .returning('holder')
      .executeTakeFirst();
    return row?.holder === holder;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db
      .deleteFrom('telemetry_leases')
      .where('name', '=', name)
      .where('holder', '=', holder)
      .execute();
  }

  async firing(): Promise<AlertRow[]> {
    return this.db.selectFrom('alerts').selectAll().where('state', '=', 'firing').orderBy('id').execute();
  }

  async recent(limit: number): Promise<AlertRow[]> {
    return this.db.selectFrom('alerts').selectAll().orderBy('id', 'desc').limit(limit).execute();
  }

  async open(a: {
    rule: string;
    severity: string;
    subject: string;
    value: number;
    threshold: number;
    startedAt: string;
  }): Promise<AlertRow> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('alerts')
      .values({
        rule: a.rule,
        severity: a.severity,
        state: 'firing',
        subject: a.subject,
        value: a.value,
        threshold: a.threshold,
        started_at: a.startedAt,
        notifications: '[]',
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async update(
    id: number,
    patch: { value?: number; state?: 'resolved'; resolved_at?: string; last_notified_at?: string },
  ): Promise<void> {
    await this.db
      .updateTable('alerts')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }

  /** Appends delivery results to an alert's history (read, append, write: only the lease holder writes). */
  async recordDeliveries(id: number, records: readonly DeliveryRecord[]): Promise<void> {
    if (records.length === 0) return;
    const row = await this.db
      .selectFrom('alerts')
      .select('notifications')
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return;
    const list = [...(JSON.parse(row.notifications) as DeliveryRecord[]), ...records].slice(-50);
    await this.db
      .updateTable('alerts')
      .set({ notifications: JSON.stringify(list), updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }
}

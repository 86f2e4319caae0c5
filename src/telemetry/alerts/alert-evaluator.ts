/**
 * Evaluates the alert rules over the live figures, in one process at a time however many run:
 * each tick, the process that holds (or takes over) the `alerts` lease in the shared database
 * evaluates; the others do nothing. A breach must last the rule's `for` before the alert fires
 * (a history row first, then the notifications); a firing alert is announced again every repeat
 * interval; when the breach ends the alert resolves and says so. Notifications run off the tick,
 * and no request or job waits for any of it.
 *
 * The database rule is special: with the database down nobody can take the lease, so the process
 * that held it last keeps judging that one rule until its lease would have run out, notifies from
 * memory, and writes the history row once the database answers again.
 */
import type { Logger } from 'pino';
import type { AlertRow, AlertsRepo, DeliveryRecord } from '../../db/alerts.repo.js';
import type { WorkerRecord } from '../../jobs/types.js';
import type { Summary, SummaryWindow } from '../live-summary.js';
import { type AlertRule, breaches, type RuleName, thresholdFor } from '../../config/alert-rules.js';
import type { AlertNotice, AlertNotifier } from './alert-notifier.js';

export const ALERTS_LEASE = 'alerts';
/** A worker whose heartbeat is older than this no longer counts as live. */
const WORKER_LIVE_MS = 30_000;

export interface AlertEvaluatorOptions {
  rules: readonly AlertRule[];
  repo: AlertsRepo;
  notifier: AlertNotifier;
  summary: (window: SummaryWindow) => Promise<Summary>;
  workers: () => Promise<WorkerRecord[]>;
  /** Throws when the database does not answer. */
  ping: () => Promise<void>;
  intervalMs: number;
  repeatIntervalMs: number;
  logger: Pick<Logger, 'warn' | 'info' | 'error'>;
  /** This process's name in the lease. */
  holder: string;
  now?: () => number;
}

interface Observation {
  subject: string;
  value: number;
}

const key = (rule: string, subject: string) => `${rule}\u0000${subject}`;

export class AlertEvaluator {
  private timer: NodeJS.Timeout | undefined;
  /** When each breach began (this process's view; a new lease holder starts counting afresh). */
  private readonly pending = new Map<string, number>();
  private leaseUntil = 0;
  private running: Promise<void> = Promise.resolve();
  /** Deliveries still in flight (tests and close wait for them). */
  private readonly deliveries = new Set<Promise<void>>();
  /** The database alert while the database is down: it cannot be written yet. */
  private dbDown: { startedAt: string; notified: boolean } | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AlertEvaluatorOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): this {
    this.timer ??= setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
    return this;
  }

  /** One evaluation (chained: ticks never overlap). */
  tick(): Promise<void> {
    this.running = this.running
      .then(() => this.evaluate())
      .catch((err: unknown) => {
        this.opts.logger.error({ err }, 'alert evaluation failed');
      });
    return this.running;
  }

  /** Resolves when every notification sent so far has been delivered (or failed). */
  async settled(): Promise<void> {
    await this.running;
    while (this.deliveries.size > 0) await Promise.all(this.deliveries);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.settled();
    await this.opts.repo.releaseLease(ALERTS_LEASE, this.opts.holder).catch((err: unknown) => {
      this.opts.logger.warn({ err }, 'could not release the alerts lease');
    });
  }

  private async evaluate(): Promise<void> {
    const now = this.now();
    const rules = this.opts.rules.filter((r) => r.enabled);
    const dbRule = rules.find((r) => r.name === 'database_unreachable');
    let held: boolean;
    try {
      await this.opts.ping();
      held = await this.opts.repo.lease(ALERTS_LEASE, this.opts.holder, now, now + this.opts.intervalMs * 3);
    } catch (err) {
      // The database is down: only the last holder, within its lease, judges it.
      if (dbRule && now < this.leaseUntil) this.databaseDown(dbRule, now);
      this.opts.logger.warn({ err }, 'alerts: the database does not answer');
      return;
    }
    if (!held) {
      this.pending.clear();
      this.leaseUntil = 0;
      return;
    }
    this.leaseUntil = now + this.opts.intervalMs * 3;
    if (this.dbDown) await this.databaseBack(dbRule);

    const windows = [...new Set(rules.map((r) => r.window))];
    const summaries = new Map(
      await Promise.all(windows.map(async (w) => [w, await this.opts.summary(w)] as const)),
    );
    const workers = rules.some((r) => r.name === 'queue_no_worker') ? await this.opts.workers() : [];
    const firing = new Map((await this.opts.repo.firing()).map((a) => [key(a.rule, a.subject), a]));
    const breaching = new Set<string>();

    for (const rule of rules) {
      const summary = summaries.get(rule.window) as Summary;
      for (const o of observe(rule, summary, workers, now)) {
        if (!breaches(rule, o.subject, o.value)) continue;
        const k = key(rule.name, o.subject);
        breaching.add(k);
        const since = this.pending.get(k) ?? now;
        this.pending.set(k, since);
        const open = firing.get(k);
        if (open) {
          await this.opts.repo.update(open.id, { value: o.value });
          const last = open.last_notified_at
            ? Date.parse(open.last_notified_at)
            : Date.parse(open.started_at);
          if (now - last >= this.opts.repeatIntervalMs)
            await this.announce('repeat', rule, open, o.value, now);
        } else if (now - since >= rule.forS * 1000) {
          const row = await this.opts.repo.open({
            rule: rule.name,
            severity: rule.severity,
            subject: o.subject,
            value: o.value,
            threshold: thresholdFor(rule, o.subject),
            startedAt: new Date(since).toISOString(),
          });
          this.opts.logger.warn({ rule: rule.name, subject: o.subject, value: o.value }, 'alert firing');
          await this.announce('firing', rule, row, o.value, now);
        }
      }
    }
    for (const k of this.pending.keys()) if (!breaching.has(k)) this.pending.delete(k);
    for (const [k, a] of firing) {
      if (breaching.has(k)) continue;
      const rule = this.opts.rules.find((r) => r.name === a.rule);
      const resolvedAt = new Date(now).toISOString();
      await this.opts.repo.update(a.id, { state: 'resolved', resolved_at: resolvedAt });
      this.opts.logger.info({ rule: a.rule, subject: a.subject }, 'alert resolved');
      if (rule) await this.announce('resolved', rule, { ...a, resolved_at: resolvedAt }, a.value, now);
    }
  }

  /** Marks the alert notified now and sends the notice in the background; the results go to its history. */
  private async announce(
    kind: AlertNotice['kind'] & DeliveryRecord['kind'],
    rule: AlertRule,
    row: AlertRow,
    value: number | null,
    now: number,
  ): Promise<void> {
    await this.opts.repo.update(row.id, { last_notified_at: new Date(now).toISOString() });
    this.send(kind, rule, row.subject, value, row.started_at, row.resolved_at ?? undefined, (records) =>
      this.opts.repo.recordDeliveries(row.id, records),
    );
  }

  private send(
    kind: DeliveryRecord['kind'],
    rule: AlertRule,
    subject: string,
    value: number | null,
    startedAt: string,
    resolvedAt: string | undefined,
    keep: (records: DeliveryRecord[]) => Promise<void>,
  ): void {
    const notice: AlertNotice = {
      kind,
      rule: rule.name,
      severity: rule.severity,
      subject,
      value,
      threshold: thresholdFor(rule, subject),
      unit: rule.unit,
      description: rule.description,
      startedAt,
      ...(resolvedAt ? { resolvedAt } : {}),
    };
    const delivery = this.opts.notifier
      .notify(notice)
      .then(async (results) => {
        const at = new Date(this.now()).toISOString();
        for (const r of results.filter((x) => !x.ok))
          this.opts.logger.warn(
            { rule: rule.name, channel: r.channel, error: r.error },
            'alert notification failed',
          );
        await keep(
          results.map((r) => ({
            kind,
            channel: r.channel,
            ok: r.ok,
            at,
            attempts: r.attempts,
            ...(r.error ? { error: r.error } : {}),
          })),
        );
      })
      .catch((err: unknown) =>
        this.opts.logger.error({ err, rule: rule.name }, 'could not record alert deliveries'),
      )
      .finally(() => this.deliveries.delete(delivery));
    this.deliveries.add(delivery);
  }

  private databaseDown(rule: AlertRule, now: number): void {
    this.dbDown ??= { startedAt: new Date(now).toISOString(), notified: false };
    if (this.dbDown.notified || now - Date.parse(this.dbDown.startedAt) < rule.forS * 1000) return;
    this.dbDown.notified = true;
    // Recorded in the history once the database answers (databaseBack).
    this.send('firing', rule, 'database', 1, this.dbDown.startedAt, undefined, async () => undefined);
  }

  /** The database answers again: writes the outage's history row and announces the end. */
  private async databaseBack(rule: AlertRule | undefined): Promise<void> {
    const down = this.dbDown;
    this.dbDown = undefined;
    if (!down?.notified || !rule) return;
    const resolvedAt = new Date(this.now()).toISOString();
    const row = await this.opts.repo.open({
      rule: rule.name,
      severity: rule.severity,
      subject: 'database',
      value: 1,
      threshold: rule.threshold,
      startedAt: down.startedAt,
    });
    await this.opts.repo.update(row.id, { state: 'resolved', resolved_at: resolvedAt, value: 0 });
    this.send('resolved', rule, 'database', 0, down.startedAt, resolvedAt, (records) =>
      this.opts.repo.recordDeliveries(row.id, records),
    );
  }
}

/** The values a rule judges, one per subject (nothing when there is too little to judge). */
function observe(rule: AlertRule, s: Summary, workers: WorkerRecord[], now: number): Observation[] {
  const name: RuleName = rule.name;
  switch (name) {
    case 'http_error_rate':
      return s.http.requests >= rule.minEvents && s.http.error_rate !== null
        ? [{ subject: 'api', value: s.http.error_rate }]
        : [];
    case 'http_route_p99':
      return s.http.routes
        .filter((r) => r.requests >= rule.minEvents && r.p99_ms !== null)
        .map((r) => ({ subject: `${r.method} ${r.route}`, value: r.p99_ms as number }));
    case 'task_failure_rate':
      return s.jobs.tasks
        .filter(
          (t) => t.completed + t.failed + t.dead + t.cancelled >= rule.minEvents && t.failure_rate !== null,
        )
        .map((t) => ({ subject: `${t.queue}/${t.task}`, value: t.failure_rate as number }));
    case 'queue_oldest_wait':
      return s.jobs.queues
        .filter((q) => !q.paused)
        .map((q) => ({ subject: q.queue, value: q.oldest_waiting_s }));
    case 'queue_no_worker':
      return s.jobs.queues
        .filter((q) => !q.paused && q.depth.waiting > 0)
        .map((q) => ({
          subject: q.queue,
          value: workers.filter(
            (w) => now - w.lastSeenAt < WORKER_LIVE_MS && (w.queues as readonly string[]).includes(q.queue),
          ).length,
        }));
    case 'daily_ai_spend':
      return [{ subject: 'ai', value: s.ai_cost.today_usd }];
    case 'database_unreachable':
      // Reached only with the database answering (the evaluator pinged it first).
      return [{ subject: 'database', value: 0 }];
    case 'cache_hit_rate_collapse': {
      const reads = s.cache.prefixes.reduce((n, p) => n + p.hit + p.miss + p.stale, 0);
      return reads >= rule.minEvents && s.cache.hit_rate !== null
        ? [{ subject: 'cache', value: s.cache.hit_rate }]
        : [];
    }
  }
}

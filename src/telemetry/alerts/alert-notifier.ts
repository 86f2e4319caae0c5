/**
 * Delivers alert notifications to Slack (incoming webhook), email (SMTP, nodemailer) and a
 * generic JSON webhook. Every delivery has a timeout; Slack's 429 is retried after its
 * Retry-After, a 5xx once; a failing channel only yields a failed result (it never throws to the
 * evaluator, and the evaluator runs off any request or job path).
 */
import nodemailer from 'nodemailer';
import type { AlertsConfig } from '../../config/alerts.js';

export interface AlertNotice {
  kind: 'firing' | 'repeat' | 'resolved' | 'test';
  rule: string;
  severity: string;
  subject: string;
  value: number | null;
  threshold: number;
  unit: string;
  description: string;
  startedAt: string;
  resolvedAt?: string;
}

export interface DeliveryResult {
  channel: 'slack' | 'email' | 'webhook';
  ok: boolean;
  attempts: number;
  /** What went wrong, said so an operator can fix it (which setting, what the server answered). */
  error?: string;
}

interface Channel {
  name: DeliveryResult['channel'];
  send(n: AlertNotice): Promise<number>;
}

/** A delivery failed; the message names the setting to check. */
export class AlertDeliveryError extends Error {
  override name = 'AlertDeliveryError';
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(message);
  }
}

const MAX_RETRY_AFTER_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const fmt = (v: number | null) => (v === null ? 'n/a' : String(Number(v.toFixed(4))));

export function headline(n: AlertNotice): string {
  const state =
    n.kind === 'resolved'
      ? 'RESOLVED'
      : n.kind === 'test'
        ? 'TEST'
        : n.kind === 'repeat'
          ? 'STILL FIRING'
          : 'FIRING';
  return `[${state}] ${n.rule} (${n.severity}) ${n.subject}: ${fmt(n.value)} vs threshold ${fmt(n.threshold)}`;
}

function body(n: AlertNotice, dashboard: string | undefined): string {
  return [
    headline(n),
    n.description,
    `value: ${fmt(n.value)} ${n.unit}; threshold: ${fmt(n.threshold)}`,
    `since: ${n.startedAt}${n.resolvedAt ? `; resolved: ${n.resolvedAt}` : ''}`,
    ...(dashboard ? [`dashboard: ${dashboard}`] : []),
  ].join('\n');
}

/** Slack incoming webhook: `{ text }`; Slack answers 200 `ok`, or an error word (`invalid_token`, `no_service`...). */
function slackChannel(url: string, timeoutMs: number, dashboard: string | undefined): Channel {
  return {
    name: 'slack',
    async send(n) {
      const text = body(n, dashboard).replace(/^(.*)$/m, '*$1*');
      for (let attempt = 1; ; attempt++) {
        let res: Response;
        try {
          res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ text }),
            signal: AbortSignal.timeout(timeoutMs),
          });
        } catch (err) {
          throw new AlertDeliveryError(
            `Slack webhook unreachable (check ALERT_SLACK_WEBHOOK_URL): ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
            attempt,
          );
        }
        const answer = (await res.text()).slice(0, 200);
        if (res.ok) return attempt;
        if (res.status === 429 && attempt < 4) {
          const after = Number(res.headers.get('retry-after'));
          await sleep(
            Math.min(MAX_RETRY_AFTER_MS, Number.isFinite(after) && after >= 0 ? after * 1000 : 1000),
          );
          continue;
        }
        if (res.status >= 500 && attempt < 2) {
          await sleep(1000);
          continue;
        }
        const hint =
          res.status === 403 || res.status === 404 || res.status === 410
            ? ' (the webhook is revoked or wrong: check ALERT_SLACK_WEBHOOK_URL)'
            : '';
        throw new AlertDeliveryError(`Slack answered ${res.status} ${answer}${hint}`, attempt);
      }
    },
  };
}

/** Any endpoint taking a JSON POST: the notice as JSON, with the dashboard link. */
function webhookChannel(url: string, timeoutMs: number, dashboard: string | undefined): Channel {
  return {
    name: 'webhook',
    async send(n) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...n, dashboard: dashboard ?? null, summary: headline(n) }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw new AlertDeliveryError(
          `webhook unreachable (check ALERT_WEBHOOK_URL): ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
          1,
        );
      }
      if (!res.ok)
        throw new AlertDeliveryError(
          `webhook answered ${res.status} ${(await res.text()).slice(0, 200)} (check ALERT_WEBHOOK_URL)`,
          1,
        );
      return 1;
    },
  };
}

function emailChannel(cfg: AlertsConfig, smtpUrl: string): Channel {
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    connectionTimeout: cfg.deliveryTimeoutMs,
    greetingTimeout: cfg.deliveryTimeoutMs,
    socketTimeout: cfg.deliveryTimeoutMs,
  });
  return {
    name: 'email',
    async send(n) {
      try {
        await transport.sendMail({
          from: cfg.emailFrom,
          to: cfg.emailTo,
          subject: headline(n),
          text: body(n, cfg.dashboardUrl),
        });
        return 1;
      } catch (err) {
        const e = err as Error & { code?: string; responseCode?: number };
        const why =
          e.code === 'EAUTH'
            ? `the SMTP server refused the login (${e.message}): check the user and password in ALERT_SMTP_URL`
            : e.code === 'ECONNECTION' || e.code === 'ETIMEDOUT' || e.code === 'ESOCKET' || e.code === 'EDNS'
              ? `the SMTP server is unreachable (${e.message}): check the host and port in ALERT_SMTP_URL`
              : `the SMTP server refused the message (${e.message})`;
        throw new AlertDeliveryError(`email: ${why}`, 1);
      }
    },
  };
}

export class AlertNotifier {
  private readonly channels: Channel[] = [];

  constructor(private readonly cfg: AlertsConfig) {
    if (cfg.slackWebhookUrl)
      this.channels.push(slackChannel(cfg.slackWebhookUrl, cfg.deliveryTimeoutMs, cfg.dashboardUrl));
    if (cfg.smtpUrl && cfg.emailTo.length > 0) this.channels.push(emailChannel(cfg, cfg.smtpUrl));
    if (cfg.webhookUrl)
      this.channels.push(webhookChannel(cfg.webhookUrl, cfg.deliveryTimeoutMs, cfg.dashboardUrl));
  }

  /** The configured channels' names. */
  get channelNames(): DeliveryResult['channel'][] {
    return this.channels.map((c) => c.name);
  }

  /** Sends `n` to every channel at once; each result says whether it arrived and, if not, why. */
  async notify(n: AlertNotice): Promise<DeliveryResult[]> {
    return Promise.all(
      this.channels.map(async (c): Promise<DeliveryResult> => {
        try {
          return { channel: c.name, ok: true, attempts: await c.send(n) };
        } catch (err) {
          const e = err instanceof AlertDeliveryError ? err : new AlertDeliveryError(String(err), 1);
          return { channel: c.name, ok: false, attempts: e.attempts, error: e.message };
        }
      }),
    );
  }

  /** A test notification to every channel (POST /alerts/test, `omnivibe alerts test`). */
  test(): Promise<DeliveryResult[]> {
    return this.notify({
      kind: 'test',
      rule: 'test',
      severity: 'info',
      subject: 'omnivibe',
      value: null,
      threshold: 0,
      unit: '',
      description: 'A test notification: this channel is configured correctly.',
      startedAt: new Date().toISOString(),
    });
  }
}

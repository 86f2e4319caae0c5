/**
 * Alerts: delivery to a fake Slack webhook speaking Slack's wire format (200 `ok`, 429 with
 * Retry-After, 500, 404 `no_service`), to a real SMTP server (smtp-server) and to a generic
 * webhook; an error-rate alert that fires only after its `for`, repeats on its interval and
 * resolves; two evaluating processes producing one notification; clear errors at the test
 * endpoint for a bad webhook URL and a bad SMTP password.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertsRepo } from '../../src/db/alerts.repo.js';
import { AlertEvaluator } from '../../src/telemetry/alerts/alert-evaluator.js';
import { AlertNotifier } from '../../src/telemetry/alerts/alert-notifier.js';
import { loadAlertsConfig } from '../../src/config/alerts.js';
import { LivePublisher } from '../../src/telemetry/live-publisher.js';
import { LiveRecorder } from '../../src/telemetry/live-recorder.js';
import { sleep, silent } from '../jobs/helpers.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { dbBackends, embeddedEnabled } from '../support/backends.js';

interface SlackCall {
  text: string;
}

/** A Slack incoming webhook: answers from `script` first (status, body, headers), then 200 `ok`. */
class FakeSlack {
  readonly calls: SlackCall[] = [];
  readonly script: { status: number; body: string; headers?: Record<string, string> }[] = [];
  private server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString('utf8')));
    req.on('end', () => {
      const payload = JSON.parse(raw) as { text?: unknown };
      // Slack refuses a payload without text.
      if (typeof payload.text !== 'string') {
        res.writeHead(400, { 'content-type': 'text/html' }).end('invalid_payload');
        return;
      }
      this.calls.push({ text: payload.text });
      const next = this.script.shift() ?? { status: 200, body: 'ok' };
      res.writeHead(next.status, { 'content-type': 'text/html', ...next.headers }).end(next.body);
    });
  });
  url = '';
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/services/T000/B000/XXXX`;
    return this;
  }
  close = () => new Promise<void>((r) => this.server.close(() => r()));
}

const rulesFile = (rules: Record<string, unknown>) => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ov-rules-')), 'rules.json');
  const off = Object.fromEntries(
    [
      'http_error_rate',
      'http_route_p99',
      'task_failure_rate',
      'queue_oldest_wait',
      'queue_no_worker',
      'daily_ai_spend',
      'database_unreachable',
      'cache_hit_rate_collapse',
    ].map((n) => [n, { enabled: false }]),
  );
  fs.writeFileSync(file, JSON.stringify({ rules: { ...off, ...rules } }));
  return file;
};

describe('alert delivery', () => {
  let slack: FakeSlack;
  let smtp: SMTPServer;
  let smtpPort = 0;
  const mails: { from: string; to: string[]; body: string }[] = [];
  const hooks: unknown[] = [];
  let hook: http.Server;
  let hookUrl = '';

  beforeAll(async () => {
    slack = await new FakeSlack().start();
    smtp = new SMTPServer({
      authOptional: false,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth(auth, _session, cb) {
        if (auth.username === 'alerts' && auth.password === 'right-password')
          return cb(null, { user: 'alerts' });
        return cb(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
      },
      onData(stream, session, cb) {
        let body = '';
        stream.on('data', (d: Buffer) => (body += d.toString('utf8')));
        stream.on('end', () => {
          const from = session.envelope.mailFrom;
          mails.push({
            from: from ? from.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            body,
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    smtpPort = (smtp.server.address() as AddressInfo).port;
    hook = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString('utf8')));
      req.on('end', () => {
        hooks.push(JSON.parse(raw));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
  });
  afterAll(async () => {
    await slack?.close();
    await new Promise<void>((r) => smtp?.close(() => r()));
    await new Promise<void>((r) => hook?.close(() => r()));
  });

  const config = (env: Record<string, string> = {}) =>
    loadAlertsConfig({
      ALERT_SLACK_WEBHOOK_URL: slack.url,
      ALERT_SMTP_URL: `smtp://alerts:right-password@127.0.0.1:${smtpPort}`,
      ALERT_EMAIL_TO: 'oncall@example.com,lead@example.com',
      ALERT_EMAIL_FROM: 'omnivibe@example.com',
      ALERT_WEBHOOK_URL: hookUrl,
      ALERT_DASHBOARD_URL: 'http://ops.example.com/admin/overview',
      ALERT_DELIVERY_TIMEOUT_MS: '3000',
      ...env,
    });

  it('sends to Slack, email and the webhook, naming rule, value, threshold and the dashboard', async () => {
    const results = await new AlertNotifier(config()).test();
    expect(results).toEqual([
      { channel: 'slack', ok: true, attempts: 1 },
      { channel: 'email', ok: true, attempts: 1 },
      { channel: 'webhook', ok: true, attempts: 1 },
    ]);
    expect(slack.calls.at(-1)?.text).toMatch(/^\*\[TEST\] test \(info\) omnivibe/);
    expect(slack.calls.at(-1)?.text).toContain('dashboard: http://ops.example.com/admin/overview');
    const mail = mails.at(-1);
    expect(mail?.to).toEqual(['oncall@example.com', 'lead@example.com']);
    expect(mail?.body).toMatch(/Subject: \[TEST\] test \(info\) omnivibe/);
    expect(mail?.body).toContain('threshold');
    expect(hooks.at(-1)).toMatchObject({
      kind: 'test',
      rule: 'test',
      dashboard: 'http://ops.example.com/admin/overview',
    });
  });

  it('retries Slack after its Retry-After on 429, and once on a 500', async () => {
    const notifier = new AlertNotifier(config({ ALERT_SMTP_URL: '', ALERT_WEBHOOK_URL: '' }));
    slack.script.push({ status: 429, body: 'rate_limited', headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    expect(await notifier.test()).toEqual([{ channel: 'slack', ok: true, attempts: 2 }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    slack.script.push({ status: 500, body: 'rollup_error' }, { status: 500, body: 'rollup_error' });
    const [r] = await notifier.test();
    expect(r).toMatchObject({ channel: 'slack', ok: false, attempts: 2 });
    expect(r?.error).toBe('Slack answered 500 rollup_error');
  });

  it('says clearly what is wrong with a bad webhook URL or SMTP password', async () => {
    slack.script.push({ status: 404, body: 'no_service' });
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const results = await new AlertNotifier(
      config({
        ALERT_SMTP_URL: `smtp://alerts:wrong-password@127.0.0.1:${smtpPort}`,
        // Nothing listens there any more.
        ALERT_WEBHOOK_URL: `http://127.0.0.1:${closedPort}/alerts`,
      }),
    ).test();
    const by = Object.fromEntries(results.map((r) => [r.channel, r]));
    expect(by.slack?.error).toBe(
      'Slack answered 404 no_service (the webhook is revoked or wrong: check ALERT_SLACK_WEBHOOK_URL)',
    );
    expect(by.email?.error).toMatch(
      /^email: the SMTP server refused the login \(.*535.*\): check the user and password in ALERT_SMTP_URL$/,
    );
    expect(by.webhook?.error).toMatch(/^webhook unreachable \(check ALERT_WEBHOOK_URL\): .*ECONNREFUSED/);
  });

  it('refuses a bad webhook URL or rules file at start, naming the variable', () => {
    expect(() => loadAlertsConfig({ ALERT_SLACK_WEBHOOK_URL: 'hooks.slack.com/x' })).toThrow(
      /ALERT_SLACK_WEBHOOK_URL/,
    );
    expect(() => loadAlertsConfig({ ALERT_SMTP_URL: 'mail.example.com' })).toThrow(/ALERT_SMTP_URL/);
    const bad = rulesFile({ http_error_rate: { for_s: -1 } });
    expect(() => loadAlertsConfig({ ALERT_RULES_FILE: bad })).toThrow(
      /ALERT_RULES_FILE=.* is invalid at rules\.http_error_rate\.for_s/,
    );
    expect(() => loadAlertsConfig({ ALERT_RULES_FILE: '/no/such/rules.json' })).toThrow(/ALERT_RULES_FILE/);
  });

  describe.runIf(embeddedEnabled())('evaluation', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await makeTestApp('sqlite', {
        ALERT_SLACK_WEBHOOK_URL: slack.url,
        ALERT_SMTP_URL: `smtp://alerts:wrong-password@127.0.0.1:${smtpPort}`,
        ALERT_EMAIL_TO: 'oncall@example.com',
      });
    });
    afterAll(async () => {
      await t?.close();
    });

    const evaluator = (holder: string, env: Record<string, string> = {}) => {
      const cfg = config({
        ALERT_SMTP_URL: '',
        ALERT_WEBHOOK_URL: '',
        ALERT_REPEAT_INTERVAL_S: '2',
        ALERT_RULES_FILE: rulesFile({
          http_error_rate: { enabled: true, for_s: 1, window: '1m', min_events: 10 },
        }),
        ...env,
      });
      const summary = t.system.telemetry!.summary;
      return new AlertEvaluator({
        rules: cfg.rules,
        repo: new AlertsRepo(t.system.database.db),
        notifier: new AlertNotifier(cfg),
        summary: (w) => summary.summary(w),
        workers: () => t.system.jobs.admin.listWorkers(),
        ping: () => t.system.database.ping(),
        intervalMs: 500,
        repeatIntervalMs: cfg.repeatIntervalMs,
        logger: silent,
        holder,
      });
    };
    /** Publishes `n` requests, `errors` of them 5xx, as one API process would. */
    const traffic = async (n: number, errors: number) => {
      const recorder = new LiveRecorder();
      const publisher = new LivePublisher({
        db: t.system.database.db,
        recorder,
        intervalMs: 60_000,
        logger: silent,
      });
      publisher.begin('api');
      for (let i = 0; i < n; i++) recorder.http('GET', '/api/v1/campaigns', i < errors ? 503 : 200, 0.01);
      await publisher.close();
    };
    const texts = () => slack.calls.map((c) => c.text.split('\n')[0]);

    it('fires only after its for, repeats on its interval, resolves, and keeps the history', async () => {
      await t.system.database.db.deleteFrom('telemetry_samples').execute();
      slack.calls.length = 0;
      const ev = evaluator('p1');
      await traffic(30, 10);
      await ev.tick();
      await ev.settled();
      expect(slack.calls).toEqual([]); // breaching, but not yet for 1 s
      expect(await new AlertsRepo(t.system.database.db).firing()).toEqual([]);
      await sleep(1100);
      await ev.tick();
      await ev.settled();
      expect(texts()).toEqual(['*[FIRING] http_error_rate (critical) api: 0.3333 vs threshold 0.05*']);
      await ev.tick(); // within the repeat interval: nothing new
      await ev.settled();
      expect(slack.calls.length).toBe(1);
      await sleep(2100);
      await ev.tick();
      await ev.settled();
      expect(texts()[1]).toMatch(/^\*\[STILL FIRING\] http_error_rate/);
      // Many good requests: 10 errors in 1030 is under 5 %.
      await traffic(1000, 0);
      await ev.tick();
      await ev.settled();
      expect(texts()[2]).toMatch(
        /^\*\[RESOLVED\] http_error_rate \(critical\) api: 0\.3333 vs threshold 0\.05\*/,
      );
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/alerts', headers: t.as('viewer') });
      const body = res.json() as {
        firing: unknown[];
        recent: { rule: string; state: string; notifications: { kind: string; ok: boolean }[] }[];
      };
      expect(body.firing).toEqual([]);
      expect(body.recent[0]).toMatchObject({ rule: 'http_error_rate', state: 'resolved' });
      expect(body.recent[0]?.notifications.map((n) => [n.kind, n.ok])).toEqual([
        ['firing', true],
        ['repeat', true],
        ['resolved', true],
      ]);
      await ev.close();
    });

    it('two evaluating processes send one notification', async () => {
      await t.system.database.db.deleteFrom('telemetry_samples').execute();
      await t.system.database.db.deleteFrom('alerts').execute();
      slack.calls.length = 0;
      const env = {
        ALERT_RULES_FILE: rulesFile({
          http_error_rate: { enabled: true, for_s: 0, window: '1m', min_events: 10 },
        }),
      };
      const a = evaluator('pa', env);
      const b = evaluator('pb', env);
      await traffic(20, 20);
      for (let i = 0; i < 3; i++) await Promise.all([a.tick(), b.tick()]);
      await Promise.all([a.settled(), b.settled()]);
      expect(texts()).toEqual(['*[FIRING] http_error_rate (critical) api: 1 vs threshold 0.05*']);
      await a.close();
      await b.close();
    });

    it('POST /alerts/test reports each channel (admin only)', async () => {
      expect(
        (await t.app.inject({ method: 'POST', url: '/api/v1/alerts/test', headers: t.as('editor') }))
          .statusCode,
      ).toBe(403);
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/alerts/test', headers: t.as('admin') });
      expect(res.statusCode).toBe(200);
      const channels = (res.json() as { channels: { channel: string; ok: boolean; error?: string }[] })
        .channels;
      expect(channels.find((c) => c.channel === 'slack')).toMatchObject({ ok: true });
      expect(channels.find((c) => c.channel === 'email')?.error).toMatch(/refused the login.*ALERT_SMTP_URL/);
    });
  });
});

describe.each(dbBackends())('alerts lease: %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('one holder at a time; renewed by its holder; taken over once expired', async () => {
    const repo = new AlertsRepo(t.system.database.db);
    expect(await repo.lease('alerts', 'a', 1000, 2000)).toBe(true);
    expect(await repo.lease('alerts', 'b', 1500, 2500)).toBe(false);
    expect(await repo.lease('alerts', 'a', 1900, 2900)).toBe(true);
    expect(await repo.lease('alerts', 'b', 2800, 3800)).toBe(false);
    expect(await repo.lease('alerts', 'b', 3000, 4000)).toBe(true);
    await repo.releaseLease('alerts', 'a'); // not a's any more: nothing happens
    expect(await repo.lease('alerts', 'a', 3100, 4100)).toBe(false);
    await repo.releaseLease('alerts', 'b');
    expect(await repo.lease('alerts', 'a', 3200, 4200)).toBe(true);
  });
});

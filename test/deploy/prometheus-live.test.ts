/**
 * deploy/ against a real Prometheus (Debian's /usr/bin/prometheus): it scrapes a running
 * `omnivibe serve` (its /metrics with METRICS_TOKEN) and a separate `omnivibe worker` (its metrics
 * port) under a short load of requests, jobs (some failing, some sandboxed), a narration priced by
 * a fake OpenAI (its wire format) and a render, with deploy/prometheus's recording and alert rules
 * loaded. Then every Grafana panel query and every rule expression goes through Prometheus's HTTP
 * API: none may fail to parse or run, every rule must evaluate healthy, and every query (for an
 * alert: every series it reads) must return data, but for the few series this load cannot
 * produce, each named below with the reason.
 *
 * Prometheus is started on a loopback port with a temporary configuration and data directory and
 * stopped by its PID. Where /usr/bin/prometheus is missing the suite is skipped, except in CI
 * (CI=true, or REQUIRE_PROMETHEUS=1), where it fails: .ci/run installs the `prometheus` package.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../jobs/helpers.js';
import { FakeVendors } from '../media/fake-vendors.js';
import { embeddedEnabled } from '../support/backends.js';
import { stopChildren } from '../support/processes.js';
import { freePort } from '../support/services.js';

const PROMETHEUS = '/usr/bin/prometheus';
const CLI = path.resolve('src/main/cli.ts');
const ADMIN_KEY = 'prometheus-live-admin-key-0123456789';
const METRICS_TOKEN = 'prometheus-live-metrics-token-0123456789';
const required = process.env.CI === 'true' || process.env.REQUIRE_PROMETHEUS === '1';
const present = fs.existsSync(PROMETHEUS);

/** Series this load cannot produce, and why: a query reading only these may come back empty. */
const MAY_BE_EMPTY: Record<string, string> = {
  omnivibe_db_slow_queries_total: 'no statement takes DB_SLOW_QUERY_MS (1 s) under this load',
  omnivibe_db_query_errors_total: 'no statement fails under this load',
};

interface PromResult {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: unknown[] };
}

interface PromRule {
  type: 'recording' | 'alerting';
  name: string;
  query: string;
  health: string;
  lastError?: string;
}

/** The series names an expression reads: our metrics, the runtime's, `up`, and recorded series. */
function seriesNames(expr: string): string[] {
  const names = expr.match(
    /\b(?:omnivibe_|http_server_|nodejs_|process_)[a-z0-9_]+|\b[a-z]+:[a-z0-9_:]+|\bup\b/g,
  );
  return [...new Set(names ?? [])];
}

describe.runIf(embeddedEnabled() && (present || required))('deploy/ against a real Prometheus', () => {
  const children: ChildProcess[] = [];
  const vendors = new FakeVendors();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-prometheus-'));
  let prom: string;
  let api: string;

  const start = (command: string, args: string[], env: Record<string, string>, name: string) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-4000)));
    child.once('exit', (code, signal) => {
      if (code !== 0 && code !== null)
        process.stderr.write(`${name} exited ${code} (${signal}): ${stderr}\n`);
    });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    if (!present) throw new Error(`${PROMETHEUS} is missing: CI must install Debian's prometheus package`);
    await vendors.start();
    const [apiPort, workerPort, promPort] = [await freePort(), await freePort(), await freePort()];
    const env: Record<string, string> = {
      DATA_DIR: path.join(dir, 'data'),
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      METRICS_TOKEN,
      LOG_LEVEL: 'warn',
      TELEMETRY_PUBLISH_MS: '500',
      JOBS_CLEANUP_INTERVAL_S: '0',
      OPENAI_BASE_URL: `${vendors.url}/v1`,
      OPENAI_API_KEY: 'sk-test',
      NARRATION_VERIFIER: 'acoustic',
    };
    const tsx = (args: string[]) => [process.execPath, ['--import', 'tsx', CLI, ...args]] as const;
    await new Promise<void>((resolve, reject) => {
      const [cmd, args] = tsx(['migrate']);
      start(cmd, [...args], env, 'omnivibe migrate').once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`migrate exited ${code}`)),
      );
    });
    const [serveCmd, serveArgs] = tsx(['serve']);
    start(serveCmd, [...serveArgs], { ...env, PORT: String(apiPort) }, 'omnivibe serve');
    const [workerCmd, workerArgs] = tsx([
      'worker',
      '--concurrency',
      '2',
      '--max-tasks-per-child',
      '2',
      '--metrics-port',
      String(workerPort),
    ]);
    start(workerCmd, [...workerArgs], env, 'omnivibe worker');
    api = `http://127.0.0.1:${apiPort}`;
    await until(
      async () => (await fetch(`${api}/health`).catch(() => undefined))?.ok === true,
      60_000,
      'serve',
    );
    await until(
      async () => (await fetch(`http://127.0.0.1:${workerPort}/metrics`).catch(() => undefined))?.ok === true,
      60_000,
      'worker metrics',
    );

    // The shipped rules, scraped every second.
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [
        path.resolve('deploy/prometheus/recording-rules.yml'),
        path.resolve('deploy/prometheus/alert-rules.yml'),
      ],
      scrape_configs: [
        {
          job_name: 'omnivibe-api',
          authorization: { type: 'Bearer', credentials: METRICS_TOKEN },
          static_configs: [{ targets: [`127.0.0.1:${apiPort}`] }],
        },
        { job_name: 'omnivibe-worker', static_configs: [{ targets: [`127.0.0.1:${workerPort}`] }] },
      ],
    };
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config));
    start(
      PROMETHEUS,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      {},
      'prometheus',
    );
    prom = `http://127.0.0.1:${promPort}`;
    await until(
      async () => (await fetch(`${prom}/-/ready`).catch(() => undefined))?.ok === true,
      60_000,
      'Prometheus',
    );
  }, 120_000);

  afterAll(async () => {
    await stopChildren(children);
    await vendors.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${api}/api/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const query = async (expr: string): Promise<PromResult> =>
    (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(expr)}`)).json() as Promise<PromResult>;

  /** About ten seconds of work: requests (cached reads, 404s, writes), jobs that pass and fail, sandboxed ones, a narration and a render. */
  async function load(): Promise<void> {
    const client = await call('POST', '/clients', { name: 'Prometheus Co' });
    const campaign = await call('POST', '/campaigns', {
      client_id: client.body.id,
      name: 'Scraped',
      platform: 'tiktok',
    });
    const content = await call('POST', `/campaigns/${String(campaign.body.id)}/contents`, {
      title: 'Scraped',
    });
    const contentId = String(content.body.id);
    expect(
      (
        await call('PUT', `/contents/${contentId}/script`, {
          blocks: [{ kind: 'hook', text: '봄 신메뉴를 소개합니다.' }],
        })
      ).status,
    ).toBe(200);
    const tasks: string[] = [];
    const enqueue = async (name: string, payload: unknown) => {
      const r = await call('POST', '/tasks', { name, payload, attempts: 1 });
      expect(r.status).toBe(202);
      tasks.push(String(r.body.task_id));
    };
    const narration = await call('POST', `/contents/${contentId}/audio`, {
      provider: 'openai',
      max_attempts: 1,
    });
    expect(narration.status).toBe(202);
    tasks.push(String(narration.body.task_id));
    const render = await call('POST', `/contents/${contentId}/renders`, { silent: true, quality: 'low' });
    expect(render.status).toBe(202);
    tasks.push(String(render.body.task_id));
    const until10s = Date.now() + 10_000;
    for (let round = 0; Date.now() < until10s; round++) {
      for (let i = 0; i < 10; i++) await call('GET', `/campaigns/${String(campaign.body.id)}`);
      await call('GET', '/campaigns/987654');
      await call('GET', '/campaigns?limit=5');
      if (round < 6) await enqueue('diagnostics.noop', {});
      if (round < 3) await enqueue('diagnostics.noop_sandboxed', {});
      if (round < 2) await enqueue('diagnostics.fail', { mode: 'permanent' });
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(
      async () => {
        for (const id of tasks) {
          const r = await call('GET', `/tasks/${id}`);
          if (!['completed', 'failed', 'dead'].includes(String(r.body.state))) return false;
        }
        return true;
      },
      60_000,
      'the load’s tasks finished',
    );
  }

  it('scrapes both processes, and every panel and rule expression returns data', async () => {
    await load();
    // A few more scrapes and rule evaluations after the last task.
    await new Promise((r) => setTimeout(r, 3_000));

    const up = await query('up');
    expect(up.data?.result).toHaveLength(2);
    for (const s of up.data?.result as { metric: { job: string }; value: [number, string] }[])
      expect(s.value[1], s.metric.job).toBe('1');

    const mayBeEmpty = (expr: string) => seriesNames(expr).some((n) => n in MAY_BE_EMPTY);
    const failures: string[] = [];
    const check = async (what: string, expr: string, mustHaveData: boolean) => {
      const r = await query(expr);
      if (r.status !== 'success') failures.push(`${what}: ${r.error}`);
      else if (mustHaveData && r.data?.result.length === 0 && !mayBeEmpty(expr))
        failures.push(`${what}: no data: ${expr}`);
    };

    // Every Grafana panel query.
    const dash = JSON.parse(fs.readFileSync('deploy/grafana/dashboards/omnivibe-overview.json', 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const panelExprs = dash.panels.flatMap((p) => p.targets.map((t) => [p.title, t.expr] as const));
    expect(panelExprs.length).toBeGreaterThanOrEqual(20);
    for (const [title, expr] of panelExprs) await check(`panel "${title}"`, expr, true);

    // Every rule, as Prometheus loaded and evaluated it.
    const rules = (
      (await (await fetch(`${prom}/api/v1/rules`)).json()) as { data: { groups: { rules: PromRule[] }[] } }
    ).data.groups.flatMap((g) => g.rules);
    const files = ['recording-rules.yml', 'alert-rules.yml'].map((f) =>
      fs.readFileSync(path.join('deploy/prometheus', f), 'utf8'),
    );
    expect(rules.filter((r) => r.type === 'recording')).toHaveLength(
      (files[0]?.match(/- record:/g) ?? []).length,
    );
    expect(rules.filter((r) => r.type === 'alerting')).toHaveLength(
      (files[1]?.match(/- alert:/g) ?? []).length,
    );
    for (const rule of rules) {
      if (rule.health !== 'ok') failures.push(`rule ${rule.name}: ${rule.health} ${rule.lastError ?? ''}`);
      // A recording rule's expression and its recorded series; an alert's condition is empty unless it
      // fires, so each series it reads must have data instead.
      await check(`rule ${rule.name}`, rule.query, rule.type === 'recording');
      if (rule.type === 'recording') await check(`recorded ${rule.name}`, rule.name, true);
      else
        for (const name of seriesNames(rule.query))
          await check(`alert ${rule.name} reads ${name}`, name, true);
    }
    expect(failures).toEqual([]);

    // The figures children report through their worker, as Prometheus has them.
    for (const expr of [
      'omnivibe_sandbox_children_started_total{job="omnivibe-worker"}',
      'omnivibe_sandbox_children_recycled_total{job="omnivibe-worker",reason="max_tasks"}',
      'omnivibe_render_duration_seconds_count{job="omnivibe-worker",outcome="ok"}',
      'omnivibe_ai_cost_usd_total{job="omnivibe-worker",provider="openai"}',
      'omnivibe_cache_request_duration_seconds_count{job="omnivibe-api"}',
    ]) {
      const r = await query(expr);
      expect(r.data?.result.length, expr).toBeGreaterThan(0);
    }
  }, 150_000);
});

// Says why where it does not run (a suite turned off by runIf above gives no reason).
if (!present && !required && embeddedEnabled())
  describe('deploy/ against a real Prometheus', () => {
    it.skip(`skipped: ${PROMETHEUS} is not installed (apt-get install prometheus; CI requires it)`, () =>
      undefined);
  });

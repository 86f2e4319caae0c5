/**
 * bench:observability — what observability costs, measured as users run the product: the built
 * `omnivibe` (dist/, so `npm run build` first), separate processes on a data directory of their
 * own, everything over HTTP.
 *
 *   api_rps          `omnivibe serve` with metrics on (the default) against METRICS_ENABLED=false, two
 *                    processes side by side, measured in turns (off, on, on, off; --quick: off, on):
 *                    GET /api/v1/campaigns/{id} under autocannon. Ratio on/off; target ≥ 0.95.
 *   job_throughput   `omnivibe start` (embedded: API and worker in one process), on and off in turns:
 *                    a paused backlog of no-ops enqueued with POST /tasks/bulk, drained after resume,
 *                    timed to the last `task_runs` row. Ratio on/off; target ≥ 0.95.
 *   metrics_scrape   GET /metrics of an `omnivibe start` after every documented route was called (from
 *                    its /openapi.json), every task ran (admin tasks over POST /tasks; narration,
 *                    render and audio batch through their routes) and the cache was read under every
 *                    prefix those touch: P99 of sequential scrapes; target ≤ 25 ms. The series count
 *                    is given beside it.
 *   summary          GET /observability/summary (1h and 5m windows) and /observability/series (1h)
 *                    of an `omnivibe serve` whose database holds an hour of four processes' figures
 *                    (two APIs, two workers, written by the same LiveRecorder the processes use, at the
 *                    default 10 s interval): P99 of sequential requests; target ≤ 50 ms.
 *
 *   api_tracing      `omnivibe serve` with tracing off, on at 100 % and on at 10 % sampling, each exporting
 *   jobs_tracing     to a local OTLP endpoint; and embedded job throughput the same three ways: ratios
 *                    to off, targets ≥ 0.80 (100 %) and ≥ 0.95 (10 %) (lib/tracing-cases.ts).
 *
 *   npm run build && npm run bench:observability [-- --quick] [--case=api_rps,summary]
 *
 * One JSON object per result on stdout, a table on stderr; each result carries the one-minute load
 * average when it was taken (`load_1m`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { LiveRecorder } from '../src/telemetry/live-recorder.js';
import { CLI, ProductStack } from './lib/omnivibe-process.js';
import { emit, isQuick, percentile, printTable } from './lib/report.js';
import { load } from './lib/servers.js';
import { runTracingCases, TRACING_CASES } from './lib/tracing-cases.js';

const CASES = ['api_rps', 'job_throughput', 'metrics_scrape', 'summary', ...TRACING_CASES] as const;
type CaseName = (typeof CASES)[number];

const quick = isQuick();
const caseArg = process.argv.find((a) => a.startsWith('--case='))?.slice('--case='.length);
const selected = new Set<string>(caseArg ? caseArg.split(',') : CASES);
for (const c of selected)
  if (!(CASES as readonly string[]).includes(c))
    throw new Error(`unknown --case ${c} (one of ${CASES.join(', ')})`);
const want = (c: CaseName) => selected.has(c);
if (!fs.existsSync(CLI)) {
  process.stderr.write(`bench:observability: ${CLI} is missing: run \`npm run build\` first\n`);
  process.exit(2);
}

const API_S = quick ? 3 : 10;
const CONNECTIONS = 50;
const DRAIN = quick ? 2000 : 20_000;
const SCRAPES = quick ? 100 : 500;
const SUMMARY_CALLS = quick ? 50 : 300;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-obs-'));
const stacks: ProductStack[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stack on a data directory of its own, with metrics on or off. */
async function stack(name: string, command: 'serve' | 'start', metrics: boolean): Promise<ProductStack> {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  const s = new ProductStack({ dir });
  s.env.LOG_LEVEL = 'warn';
  if (!metrics) s.env.METRICS_ENABLED = 'false';
  stacks.push(s);
  await s.startServer(command);
  return s;
}

/** Stops stacks a case is done with. */
async function retire(...done: ProductStack[]): Promise<void> {
  for (const s of done) {
    stacks.splice(stacks.indexOf(s), 1);
    await s.stop();
  }
}

/**
 * Measures the stack with metrics on and the one with them off in turns (off, on, on, off; quick:
 * off, on), so drift of the machine falls on both; the mean of each.
 */
async function inTurns(
  on: ProductStack,
  off: ProductStack,
  measure: (s: ProductStack) => Promise<number>,
): Promise<{ on: number; off: number; turns: number }> {
  const turns = quick ? [off, on] : [off, on, on, off];
  const got = new Map<ProductStack, number[]>([
    [on, []],
    [off, []],
  ]);
  for (const s of turns) got.get(s)?.push(await measure(s));
  const mean = (s: ProductStack) => {
    const v = got.get(s) ?? [];
    return v.reduce((a, b) => a + b, 0) / v.length;
  };
  return { on: mean(on), off: mean(off), turns: turns.length };
}

/** Milliseconds each of `n` sequential GETs of `url` took (after a warm-up of 20). */
async function timedGets(url: string, key: string, n: number): Promise<number[]> {
  const headers = { authorization: `Bearer ${key}` };
  const out: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t0 = performance.now();
    // A warm-up request may meet a pooled connection the server closed while the case set up (its
    // keep-alive timeout): it is sent again, once.
    const res = await fetch(url, { headers }).catch((err: unknown) => {
      if (i >= 20 || !(err instanceof TypeError)) throw err;
      return fetch(url, { headers });
    });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
    if (i >= 20) out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

async function apiRps(): Promise<void> {
  const on = await stack('api-on', 'serve', true);
  const off = await stack('api-off', 'serve', false);
  const target = async (s: ProductStack) => {
    const client = await s.api.request<{ id: number }>('POST', '/clients', { name: 'bench' });
    const c = await s.api.request<{ id: number }>('POST', '/campaigns', {
      client_id: client.id,
      name: 'bench',
      platform: 'tiktok',
    });
    return `${s.api.baseUrl}/api/v1/campaigns/${c.id}`;
  };
  const urls = new Map([
    [on, await target(on)],
    [off, await target(off)],
  ]);
  const headers = (s: ProductStack) => ({ authorization: `Bearer ${s.key}` });
  for (const s of [off, on])
    await load(urls.get(s) as string, { connections: 10, durationS: 1, headers: headers(s) });
  const r = await inTurns(on, off, async (st) => {
    const res = await load(urls.get(st) as string, {
      connections: CONNECTIONS,
      durationS: API_S,
      headers: headers(st),
    });
    if (res.errors > 0 || res.non2xx > 0)
      throw new Error(`api_rps: ${res.errors} errors, ${res.non2xx} non-2xx`);
    return res.rps;
  });
  emit({
    bench: 'observability',
    case: 'api_rps',
    backend: 'sqlite',
    metric: 'rps_metrics_on',
    value: r.on,
    unit: 'req/s',
    baseline: r.off,
    note: 'target ratio ≥ 0.95; baseline: METRICS_ENABLED=false',
    turns: r.turns,
    connections: CONNECTIONS,
    duration_s: API_S,
  });
  await retire(on, off);
}

/** Seconds to drain DRAIN no-ops enqueued in bulk into a paused queue. */
async function drain(s: ProductStack): Promise<number> {
  await s.api.setPaused('default', true);
  const mark = s.runs.mark();
  for (let i = 0; i < DRAIN; i += 1000)
    await s.api.enqueueBulk(
      Array.from({ length: Math.min(1000, DRAIN - i) }, () => ({ name: 'diagnostics.noop', payload: {} })),
    );
  const t0 = performance.now();
  await s.api.setPaused('default', false);
  await s.runs.waitFinished(mark, 'diagnostics.noop', DRAIN, 30_000, 'job_throughput');
  return (performance.now() - t0) / 1000;
}

async function jobThroughput(): Promise<void> {
  const on = await stack('jobs-on', 'start', true);
  const off = await stack('jobs-off', 'start', false);
  // Warm-up: JIT and statement caches.
  for (const s of [off, on]) {
    const mark = s.runs.mark();
    await s.api.enqueueBulk(Array.from({ length: 200 }, () => ({ name: 'diagnostics.noop', payload: {} })));
    await s.runs.waitFinished(mark, 'diagnostics.noop', 200, 30_000, 'warm-up');
  }
  const r = await inTurns(on, off, async (st) => DRAIN / (await drain(st)));
  emit({
    bench: 'observability',
    case: 'job_throughput',
    backend: 'sqlite',
    metric: 'jobs_per_s_metrics_on',
    value: r.on,
    unit: 'jobs/s',
    baseline: r.off,
    note: 'omnivibe start; target ratio ≥ 0.95; baseline: METRICS_ENABLED=false',
    drain: DRAIN,
    turns: r.turns,
  });
  await retire(on, off);
}

/** Calls every documented operation once with sample ids (most answer 4xx: the series count either way). */
async function everyRoute(s: ProductStack): Promise<number> {
  const doc = (await (await fetch(`${s.api.baseUrl}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { requestBody?: unknown }>>;
  };
  let n = 0;
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method) || p.endsWith('/stream')) continue;
      const url = p.replace(/\{[^}]+\}/g, '999999');
      const res = await fetch(`${s.api.baseUrl}${url}`, {
        method: method.toUpperCase(),
        headers: {
          authorization: `Bearer ${s.key}`,
          ...(op.requestBody ? { 'content-type': 'application/json' } : {}),
        },
        ...(op.requestBody ? { body: '{}' } : {}),
      });
      await res.arrayBuffer();
      n++;
    }
  }
  return n;
}

async function metricsScrape(): Promise<void> {
  const s = await stack('scrape', 'start', true);
  const routes = await everyRoute(s);
  // Content to narrate (eSpeak, on this machine) and render, so those tasks run too.
  const client = await s.api.request<{ id: number }>('POST', '/clients', { name: 'scrape' });
  const campaign = await s.api.request<{ id: number }>('POST', '/campaigns', {
    client_id: client.id,
    name: 'scrape',
    platform: 'tiktok',
  });
  const content = await s.api.request<{ id: number }>('POST', `/campaigns/${campaign.id}/contents`, {
    title: 'scrape',
  });
  await fetch(`${s.api.baseUrl}/api/v1/contents/${content.id}/script`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ blocks: [{ kind: 'hook', text: '봄 신메뉴를 소개합니다.' }] }),
  });
  for (let i = 0; i < 3; i++) {
    await s.api.request('GET', `/campaigns/${campaign.id}`);
    await s.api.request('GET', `/contents/${content.id}`);
    await s.api.request('GET', `/contents/${content.id}/script`);
  }
  const tasks = [
    await s.api.request<{ task_id: string }>('POST', `/contents/${content.id}/audio`, { provider: 'espeak' }),
    await s.api.request<{ task_id: string }>('POST', '/audio/batch', {
      content_ids: [content.id],
      provider: 'espeak',
    }),
  ];
  const names = [
    'diagnostics.noop',
    'diagnostics.noop_sandboxed',
    'diagnostics.sleep',
    'diagnostics.sleep_high',
    'diagnostics.sleep_low',
    'diagnostics.sleep_timeout',
    'diagnostics.cpu',
    'diagnostics.fail',
    'maintenance.cleanup',
  ];
  const payloads: Record<string, unknown> = {
    'diagnostics.sleep': { ms: 1 },
    'diagnostics.sleep_high': { ms: 1 },
    'diagnostics.sleep_low': { ms: 1 },
    'diagnostics.sleep_timeout': { ms: 1 },
    'diagnostics.cpu': { ms: 1 },
    'diagnostics.fail': { mode: 'permanent' },
  };
  for (const name of names) tasks.push(await s.api.enqueue(name, payloads[name] ?? {}));
  tasks.push(await s.api.enqueue('stats.aggregate', { campaign_id: campaign.id }));
  const deadline = Date.now() + 120_000;
  for (const t of tasks) {
    while (Date.now() < deadline) {
      const state = (await s.api.request<{ state: string }>('GET', `/tasks/${t.task_id}`)).state;
      if (['completed', 'failed', 'dead', 'cancelled'].includes(state)) break;
      await sleep(50);
    }
  }
  // The narration is there now: render it too.
  const render = await s.api.request<{ task_id: string }>('POST', `/contents/${content.id}/renders`, {
    quality: 'low',
  });
  while (Date.now() < deadline) {
    const state = (await s.api.request<{ state: string }>('GET', `/tasks/${render.task_id}`)).state;
    if (['completed', 'failed', 'dead', 'cancelled'].includes(state)) break;
    await sleep(100);
  }
  const body = await (
    await fetch(`${s.api.baseUrl}/metrics`, { headers: { authorization: `Bearer ${s.key}` } })
  ).text();
  const series = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const ms = await timedGets(`${s.api.baseUrl}/metrics`, s.key, SCRAPES);
  emit({
    bench: 'observability',
    case: 'metrics_scrape',
    backend: 'sqlite',
    metric: 'scrape_p99_ms',
    value: percentile(ms, 99),
    unit: 'ms',
    note: `target ≤ 25 ms; ${series} series; p50 ${Math.round(percentile(ms, 50) * 100) / 100} ms`,
    series,
    routes_called: routes,
    scrapes: SCRAPES,
  });
  await retire(s);
}

/** An interval of one process: an API's requests over every route or a worker's attempts of every task. */
function interval(role: 'api' | 'worker', seed: number): string {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const r = new LiveRecorder();
  if (role === 'api') {
    for (let route = 0; route < 40; route++)
      for (let i = 0; i < 25; i++)
        r.http(
          route % 3 === 0 ? 'POST' : 'GET',
          `/api/v1/route${route}/:id`,
          rnd() < 0.01 ? 500 : 200,
          0.0003 * Math.exp(rnd() * 8),
        );
    for (const prefix of ['campaign', 'campaigns', 'content', 'script', 'stats', 'client'])
      r.cache(prefix, rnd() < 0.8 ? 'hit' : 'miss', 1 + Math.floor(rnd() * 50));
  } else {
    for (let task = 0; task < 14; task++)
      for (let i = 0; i < 10; i++)
        r.job(
          ['high_priority', 'default', 'low_priority'][task % 3] as string,
          `task.${task}`,
          rnd() < 0.05 ? 'failed' : 'completed',
          rnd(),
          0.001 * Math.exp(rnd() * 9),
        );
  }
  for (let i = 0; i < 200; i++) r.db(0.0001 * Math.exp(rnd() * 6), false);
  for (const q of ['high_priority', 'default', 'low_priority'])
    r.queue(q, { waiting: Math.floor(rnd() * 100), oldest_s: rnd() * 30 });
  return JSON.stringify(r.take());
}

async function summary(): Promise<void> {
  const s = await stack('summary', 'serve', true);
  // An hour of four processes' figures at the default 10 s interval, written where the processes write them.
  const db = new Database(path.join(root, 'summary', 'omnivibe.db'));
  const insert = db.prepare(
    'insert into telemetry_samples (process, role, start_ms, end_ms, figures) values (?, ?, ?, ?, ?)',
  );
  const now = Date.now();
  const procs = [
    ['bench-api-1', 'api'],
    ['bench-api-2', 'api'],
    ['bench-worker-1', 'worker'],
    ['bench-worker-2', 'worker'],
  ] as const;
  db.transaction(() => {
    for (let end = now - 3_590_000; end <= now; end += 10_000)
      procs.forEach(([name, role], i) => insert.run(name, role, end - 10_000, end, interval(role, end + i)));
  })();
  db.close();
  const rows = procs.length * 360;
  for (const [c, url] of [
    ['summary_1h', '/api/v1/observability/summary?window=1h'],
    ['summary_5m', '/api/v1/observability/summary?window=5m'],
    ['series_1h', '/api/v1/observability/series?window=1h'],
  ] as const) {
    const ms = await timedGets(`${s.api.baseUrl}${url}`, s.key, SUMMARY_CALLS).catch((err: unknown) => {
      throw new Error(`${c}: ${String(err)}\n${s.server.tail()}`);
    });
    emit({
      bench: 'observability',
      case: c,
      backend: 'sqlite',
      metric: 'p99_ms',
      value: percentile(ms, 99),
      unit: 'ms',
      note: `target ≤ 50 ms; ${rows} rows of 4 processes; p50 ${Math.round(percentile(ms, 50) * 100) / 100} ms`,
      rows,
      calls: SUMMARY_CALLS,
    });
  }
  await retire(s);
}

try {
  if (want('api_rps')) await apiRps();
  if (want('job_throughput')) await jobThroughput();
  if (want('metrics_scrape')) await metricsScrape();
  if (want('summary')) await summary();
  await runTracingCases(selected, quick);
} finally {
  for (const s of stacks) await s.stop();
  fs.rmSync(root, { recursive: true, force: true });
  printTable();
}

/**
 * The tracing cases of bench:observability: what tracing costs, as ratios taken in the same run.
 *
 *   api_tracing   requests/s of `omnivibe serve` (embedded, a SQLite file) with tracing off, on at
 *                 100 % sampling and on at 10 % (parentbased_traceidratio 0.1), each exporting to a
 *                 local OTLP endpoint (bench/lib/otlp-sink.ts, its own process). Three servers on one
 *                 data directory, loaded in turn, rounds interleaved (off, 100 %, 10 %, ...); the
 *                 routes: GET /api/v1/campaigns/{id} (a cached read) and the filtered campaign list.
 *   jobs_tracing  embedded job throughput (diagnostics.noop, the worker runtime with its defaults,
 *                 in this process, log lines at info to /dev/null) with tracing off, 100 % and 10 %:
 *                 the backlog is enqueued while the queue is paused (1,000 per bulk: each attempt a
 *                 trace of its own, linked to its enqueue), timed from resume to the last completion.
 * Targets (issue 13): 100 % ≥ 0.80 of off, 10 % ≥ 0.95, for both. Each result names the Node version
 * it ran on: every process is started with this one's `process.execPath`, so the bench run by another
 * Node (in a copy of the tree with its own `npm ci` under it, as .ci/run does) measures that Node.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../../src/config/config.js';
import { createLogger, createSystem } from '../../src/main/system.js';
import { startWorker } from '../../src/main/worker.js';
import { workerDefaults } from '../../src/main/worker-flags.js';
import { freePort } from '../../test/support/services.js';
import { emit } from './report.js';
import { type BenchServer, load, startNodeServer } from './servers.js';

const BENCH = 'observability';
const ADMIN_KEY = 'bench-observability-key-0123456789';

type Mode = 'off' | 'on_100' | 'on_10';
const MODES: Mode[] = ['off', 'on_100', 'on_10'];
const TARGET: Record<Exclude<Mode, 'off'>, number> = { on_100: 0.8, on_10: 0.95 };

/** The OTEL_* settings of a mode, exporting to `endpoint`. */
function tracingEnv(mode: Mode, endpoint: string): Record<string, string> {
  if (mode === 'off') return {};
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_TRACES_SAMPLER: mode === 'on_100' ? 'parentbased_always_on' : 'parentbased_traceidratio',
    ...(mode === 'on_10' ? { OTEL_TRACES_SAMPLER_ARG: '0.1' } : {}),
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function sinkStats(sink: BenchServer): Promise<{ requests: number; bytes: number }> {
  return (await (await fetch(`${sink.url}/stats`)).json()) as { requests: number; bytes: number };
}

async function apiTracing(sink: BenchServer, quick: boolean): Promise<void> {
  const rounds = quick ? 1 : 3;
  const durationS = quick ? 3 : 10;
  const connections = 50;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-obs-'));
  const servers = new Map<Mode, BenchServer>();
  try {
    for (const mode of MODES) {
      const port = await freePort();
      servers.set(
        mode,
        await startNodeServer(
          'src/main/cli.ts',
          ['serve'],
          {
            PORT: String(port),
            DATA_DIR: dataDir,
            DATABASE_URL: '',
            LOG_LEVEL: 'warn',
            OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
            RATE_LIMIT_WRITES_PER_MIN: '100000',
            ...tracingEnv(mode, sink.url),
          },
          `http://127.0.0.1:${port}`,
          '/ready',
        ),
      );
    }
    const seedUrl = (servers.get('off') as BenchServer).url;
    const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
    const post = async (url: string, body: unknown) => {
      const r = await fetch(`${seedUrl}${url}`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (r.status !== 201) throw new Error(`seed ${url}: ${r.status} ${await r.text()}`);
      return (await r.json()) as { id: number };
    };
    const client = await post('/api/v1/clients', { name: 'bench client' });
    let campaignId = 0;
    for (let k = 0; k < 50; k++) {
      const c = await post('/api/v1/campaigns', {
        client_id: client.id,
        name: `campaign ${k}`,
        platform: 'youtube',
        status: k % 5 === 0 ? 'paused' : 'active',
      });
      if (k === 25) campaignId = c.id;
    }
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };
    const routes: [string, string][] = [
      ['get_campaign', `/api/v1/campaigns/${campaignId}`],
      ['list_campaigns', `/api/v1/campaigns?client_id=${client.id}&status=active&limit=20`],
    ];
    for (const [route, url] of routes) {
      for (const s of servers.values())
        await load(`${s.url}${url}`, { connections: 10, durationS: 1, headers: auth });
      const rps = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
      const p99 = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
      for (let r = 0; r < rounds; r++)
        for (const mode of MODES) {
          const s = servers.get(mode) as BenchServer;
          const out = await load(`${s.url}${url}`, { connections, durationS, headers: auth });
          if (out.errors > 0 || out.non2xx > 0)
            throw new Error(`${route} ${mode}: ${out.errors} errors, ${out.non2xx} non-2xx responses`);
          rps.get(mode)?.push(out.rps);
          p99.get(mode)?.push(out.p99Ms);
        }
      const base = mean(rps.get('off') as number[]);
      const exported = await sinkStats(sink);
      for (const mode of MODES) {
        const value = mean(rps.get(mode) as number[]);
        emit({
          bench: BENCH,
          case: `api_tracing_${route}`,
          backend: mode,
          node: process.version,
          metric: 'rps',
          value,
          unit: 'req/s',
          ...(mode === 'off'
            ? {}
            : { baseline: base, target: TARGET[mode], note: `target ≥ ${TARGET[mode]} of off` }),
          rounds,
          duration_s: durationS,
          connections,
          rounds_rps: (rps.get(mode) as number[]).map(Math.round),
          p99_ms: mean(p99.get(mode) as number[]),
          otlp_exports_so_far: exported.requests,
          otlp_bytes_so_far: exported.bytes,
        });
      }
    }
  } finally {
    for (const s of servers.values()) await s.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** One timed run of `n` noop jobs on a fresh embedded System with the mode's tracing; jobs/s. */
async function jobRun(mode: Mode, endpoint: string, n: number): Promise<number> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-obs-jobs-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    JOBS_CLEANUP_INTERVAL_S: '0',
    ...tracingEnv(mode, endpoint),
  });
  const system = await createSystem(config, createLogger(config, '/dev/null'));
  const { jobs } = system;
  const worker = startWorker(system, jobs, {
    ...workerDefaults(config),
    queues: ['default'],
    metricsPort: 0,
  });
  try {
    let done = 0;
    let failed = 0;
    let finish: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (finish = resolve));
    const warmup = 200;
    const target = warmup + n;
    jobs.admin.on('completed', () => ++done >= target && finish());
    jobs.admin.on('failed', (_id, _err, final) => {
      if (!final) return;
      failed++;
      if (++done >= target) finish();
    });
    await jobs.enqueueBulk(Array.from({ length: warmup }, () => ({ name: 'diagnostics.noop', payload: {} })));
    while (done < warmup) await new Promise((r) => setTimeout(r, 10));
    await jobs.admin.pause('default');
    for (let i = 0; i < n; i += 1000)
      await jobs.enqueueBulk(
        Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'diagnostics.noop', payload: {} })),
      );
    const t0 = performance.now();
    await jobs.admin.resume('default');
    await all;
    if (failed > 0) throw new Error(`jobs_tracing ${mode}: ${failed} jobs failed`);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await worker.stop({ timeoutMs: 5000 });
    await system.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function jobsTracing(sink: BenchServer, quick: boolean): Promise<void> {
  const rounds = quick ? 1 : 3;
  const n = quick ? 2_000 : 20_000;
  const rates = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++)
    for (const mode of MODES) rates.get(mode)?.push(await jobRun(mode, sink.url, n));
  const base = mean(rates.get('off') as number[]);
  for (const mode of MODES)
    emit({
      bench: BENCH,
      case: 'jobs_tracing',
      backend: mode,
      node: process.version,
      metric: 'noop_jobs_per_s',
      value: mean(rates.get(mode) as number[]),
      unit: 'jobs/s',
      ...(mode === 'off'
        ? {}
        : { baseline: base, target: TARGET[mode], note: `target ≥ ${TARGET[mode]} of off` }),
      rounds,
      jobs: n,
      rounds_rate: (rates.get(mode) as number[]).map(Math.round),
    });
}

export const TRACING_CASES = ['api_tracing', 'jobs_tracing'] as const;

/** Runs the selected tracing cases against an OTLP sink process of their own. */
export async function runTracingCases(selected: ReadonlySet<string>, quick: boolean): Promise<void> {
  if (!TRACING_CASES.some((c) => selected.has(c))) return;
  const port = await freePort();
  const sink = await startNodeServer(
    'bench/lib/otlp-sink.ts',
    [],
    { PORT: String(port) },
    `http://127.0.0.1:${port}`,
    '/stats',
  );
  try {
    if (selected.has('api_tracing')) await apiTracing(sink, quick);
    if (selected.has('jobs_tracing')) await jobsTracing(sink, quick);
  } finally {
    await sink.stop();
  }
}

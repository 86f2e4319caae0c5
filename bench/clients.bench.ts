/**
 * bench:clients — greedy and hostile clients against the real API (a separate process,
 * embedded mode on a SQLite file), loopback only, bounded in time.
 *   npm run bench:clients [-- --quick]
 * Cases:
 *   event_streams  STREAMS live /tasks/{id}/events streams over TASKS tasks, held at the
 *                  process limit (EVENT_STREAMS_MAX): the server's CPU and RSS before, while
 *                  held and after they close; 429s for streams past the limit; a plain
 *                  GET /clients' latency while they are held.
 *   event_streams_heap  the same streams against the app in this process (so the heap can be
 *                  measured after a full GC, client side included): heap before, held, after.
 *   bad_key_flood  a valid client's p50 on GET /clients alone, then with a flood of random
 *                  bad keys from the same address; the flood's rate and how many log lines
 *                  the server wrote meanwhile.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { buildApp } from '../src/api/app.js';
import { loadConfig } from '../src/config/config.js';
import { appDepsFrom } from '../src/main/api.js';
import { createLogger, createSystem } from '../src/main/system.js';
import { freePort } from '../test/support/services.js';
import { emit, isQuick, printTable } from './lib/report.js';
import { load, startNodeServer } from './lib/servers.js';

const quick = isQuick();
const STREAMS = quick ? 500 : 2000;
const TASKS = 50;
const HOLD_S = quick ? 5 : 15;
const FLOOD_S = quick ? 5 : 10;
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const TICK_HZ = 100; // USER_HZ on Linux

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-clients-'));
const port = await freePort();
const api = await startNodeServer(
  'src/main/cli.ts',
  ['serve'],
  {
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
    DATABASE_URL: '',
    EVENT_STREAMS_PER_KEY: String(STREAMS),
    EVENT_STREAMS_MAX: String(STREAMS),
    RATE_LIMIT_WRITES_PER_MIN: '100000',
  },
  `http://127.0.0.1:${port}`,
  '/ready',
);
const pid = api.child.pid as number;
/** The server's log lines by kind: one per refused request (401/429), aggregated, and the rest. */
const logLines = { refused: 0, aggregated: 0, other: 0 };
let partial = '';
api.child.stdout?.on('data', (d: Buffer) => {
  const lines = (partial + d.toString()).split('\n');
  partial = lines.pop() ?? '';
  for (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string; res?: { statusCode?: number } };
    if (entry.msg === 'refused requests (aggregated)') logLines.aggregated += 1;
    else if (entry.res?.statusCode === 401 || entry.res?.statusCode === 429) logLines.refused += 1;
    else logLines.other += 1;
  }
});

/** The server's CPU seconds so far and its resident memory, MB. */
function usage(): { cpuS: number; rssMb: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[11]) + Number(fields[12])) / TICK_HZ;
  const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpuS, rssMb: Number(rss) / 1024 };
}
/** CPU share (1 = one core) over `seconds`, and RSS at the end. */
async function sample(seconds: number): Promise<{ cpu: number; rssMb: number }> {
  const a = usage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = usage();
  return { cpu: (b.cpuS - a.cpuS) / seconds, rssMb: b.rssMb };
}

/** Opens `count` event streams round-robin over `tasks`; returns the status counts and a closer. */
async function openStreams(baseUrl: string, headers: Record<string, string>, tasks: string[], count: number) {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: http.ClientRequest[] = [];
  const statuses = new Map<number, number>();
  const openOne = (id: string) =>
    new Promise<void>((resolve) => {
      const req = http.get(`${baseUrl}/api/v1/tasks/${id}/events`, { agent, headers }, (res) => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
        res.resume();
        resolve();
      });
      req.on('error', () => resolve());
      requests.push(req);
    });
  for (let i = 0; i < count; i += 100) {
    const batch = Math.min(100, count - i);
    await Promise.all(
      Array.from({ length: batch }, (_, k) => openOne(tasks[(i + k) % tasks.length] as string)),
    );
  }
  return {
    statuses,
    close() {
      for (const req of requests) req.destroy();
      agent.destroy();
    },
  };
}

const gc = (globalThis as { gc?: () => void }).gc;
const heapMb = async () => {
  await new Promise((r) => setTimeout(r, 200));
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

/** The heap of an in-process app before, while and after STREAMS streams are held. */
async function heapCase(): Promise<void> {
  const config = loadConfig({
    DATABASE_URL: 'sqlite::memory:',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    EVENT_STREAMS_PER_KEY: String(STREAMS),
    EVENT_STREAMS_MAX: String(STREAMS),
  });
  const system = await createSystem(config, createLogger(config));
  const app = await buildApp(appDepsFrom(system, { logger: false }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const address = app.server.address() as { port: number };
    const baseUrl = `http://127.0.0.1:${address.port}`;
    const key = (await system.apiKeys.create('bench heap', 'admin')).key;
    const headers = { authorization: `Bearer ${key}` };
    const tasks: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      tasks.push((await system.jobs.enqueue('diagnostics.noop', {}, { delayMs: 3_600_000 })).id);
    }
    // Two rounds: what the first leaves behind (compiled code, pools) stays; a leak would grow again.
    const before = await heapMb();
    const rounds: { held: number; after: number }[] = [];
    for (let round = 0; round < 2; round++) {
      const streams = await openStreams(baseUrl, headers, tasks, STREAMS);
      await new Promise((r) => setTimeout(r, HOLD_S * 1000));
      const held = await heapMb();
      streams.close();
      await new Promise((r) => setTimeout(r, 2000));
      rounds.push({ held, after: await heapMb() });
    }
    const base = {
      bench: 'clients',
      case: 'event_streams_heap',
      backend: 'sqlite',
      streams: STREAMS,
      gc: gc !== undefined,
    };
    emit({ ...base, metric: 'heap_before', value: before, unit: 'MB' });
    rounds.forEach((r, i) => {
      emit({ ...base, metric: `heap_held_${i + 1}`, value: r.held, unit: 'MB' });
      emit({ ...base, metric: `heap_after_${i + 1}`, value: r.after, unit: 'MB', baseline: before });
    });
  } finally {
    await app.close();
    await system.close();
  }
}

const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
async function call(method: string, url: string, body?: unknown, headers = admin) {
  const r = await fetch(`${api.url}${url}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

try {
  await heapCase();
  const viewer = (await call('POST', '/api/v1/keys', { name: 'bench viewer', role: 'viewer' })).body
    .key as string;
  await call('POST', '/api/v1/clients', { name: 'bench client' });
  const tasks: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    const r = await call('POST', '/api/v1/tasks', { name: 'diagnostics.noop', delay_ms: 3_600_000 });
    tasks.push(r.body.task_id as string);
  }
  const viewerHeaders = { authorization: `Bearer ${viewer}` };

  // --- event_streams ---
  const before = await sample(5);
  const streams = await openStreams(api.url, viewerHeaders, tasks, STREAMS + 100);
  const statuses = streams.statuses;
  const held = await sample(HOLD_S);
  const during = await load(`${api.url}/api/v1/clients`, {
    connections: 4,
    durationS: 3,
    headers: viewerHeaders,
  });
  streams.close();
  await new Promise((r) => setTimeout(r, 2000));
  const after = await sample(10);
  const base = { bench: 'clients', case: 'event_streams', backend: 'sqlite', streams: STREAMS, tasks: TASKS };
  emit({ ...base, metric: 'streams_open', value: statuses.get(200) ?? 0, unit: 'streams' });
  emit({ ...base, metric: 'streams_refused_429', value: statuses.get(429) ?? 0, unit: 'streams' });
  emit({ ...base, metric: 'cpu_before', value: before.cpu * 100, unit: '%' });
  emit({ ...base, metric: 'cpu_held', value: held.cpu * 100, unit: '%' });
  emit({ ...base, metric: 'cpu_after', value: after.cpu * 100, unit: '%' });
  emit({ ...base, metric: 'rss_before', value: before.rssMb, unit: 'MB' });
  emit({ ...base, metric: 'rss_held', value: held.rssMb, unit: 'MB' });
  emit({ ...base, metric: 'rss_after', value: after.rssMb, unit: 'MB' });
  emit({ ...base, metric: 'get_clients_p50_held', value: during.p50Ms, unit: 'ms' });
  emit({ ...base, metric: 'get_clients_p99_held', value: during.p99Ms, unit: 'ms' });

  // --- bad_key_flood ---
  const alone = await load(`${api.url}/api/v1/clients`, {
    connections: 4,
    durationS: FLOOD_S,
    headers: viewerHeaders,
  });
  const linesBefore = { ...logLines };
  const flood = autocannon({
    url: `${api.url}/api/v1/clients`,
    connections: 20,
    duration: FLOOD_S + 1,
    requests: [
      {
        setupRequest: (req) => ({
          ...req,
          headers: { authorization: `Bearer bad_${Math.random().toString(36).slice(2)}` },
        }),
      },
    ],
  });
  await new Promise((r) => setTimeout(r, 500));
  const withFlood = await load(`${api.url}/api/v1/clients`, {
    connections: 4,
    durationS: FLOOD_S,
    headers: viewerHeaders,
  });
  const floodResult = await flood;
  const fb = { bench: 'clients', case: 'bad_key_flood', backend: 'sqlite' };
  emit({ ...fb, metric: 'valid_p50_alone', value: alone.p50Ms, unit: 'ms' });
  emit({ ...fb, metric: 'valid_p50_flood', value: withFlood.p50Ms, unit: 'ms', baseline: alone.p50Ms });
  emit({ ...fb, metric: 'valid_p99_alone', value: alone.p99Ms, unit: 'ms' });
  emit({ ...fb, metric: 'valid_p99_flood', value: withFlood.p99Ms, unit: 'ms', baseline: alone.p99Ms });
  emit({ ...fb, metric: 'valid_rps_flood', value: withFlood.rps, unit: 'req/s', baseline: alone.rps });
  emit({ ...fb, metric: 'flood_rps', value: floodResult.requests.average, unit: 'req/s' });
  // The aggregated line comes every 10 s: wait for the one covering the end of the flood.
  await new Promise((r) => setTimeout(r, 10_500));
  const flood401 = floodResult['4xx'];
  emit({ ...fb, metric: 'flood_refused', value: flood401, unit: 'requests' });
  emit({
    ...fb,
    metric: 'flood_log_lines_per_request',
    value: logLines.refused - linesBefore.refused,
    unit: 'lines',
  });
  emit({
    ...fb,
    metric: 'flood_log_lines_aggregated',
    value: logLines.aggregated - linesBefore.aggregated,
    unit: 'lines',
  });
} finally {
  await api.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
printTable();

/**
 * Cache benchmark: `npm run bench:cache [-- --quick]`.
 *
 * (a) get latency: an L1 hit, a Redis hit (no L1) and a raw ioredis GET of the same value, in one run;
 *     the memory store too.                                     metric get_p50_us (case l1, redis, raw_redis, memory)
 * (b) GET /api/v1/contents/{id}/script with the cache, without it, and a bare Fastify hello world,
 *     each server in its own child process, autocannon here at 50 connections. metric rps, p99_ms
 * (c) Zipf (s = 1.0) reads over N contents (100,000; 3,000 with --quick) with 5 % script writes through
 *     the API, every response compared with the database.     metric hit_rate, stale_reads (case zipf)
 *
 * Targets: L1 p50 <= 5 µs; Redis hit <= 1.3x raw GET; cached >= 70 % of hello rps with p99 <= 5 ms;
 * zipf hit rate >= 90 % with 0 stale reads.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../src/api/app.js';
import { loadCacheConfig } from '../src/config/cache.js';
import type { CacheService } from '../src/cache/cache.service.js';
import { createCacheService } from '../src/cache/create-cache.js';
import { loadConfig } from '../src/config/config.js';
import { createDomainServices } from '../src/domain/services.js';
import { ChangeFeed } from '../src/domain/changes.js';
import { appDepsFrom } from '../src/main/api.js';
import { createLogger, createSystem, type System } from '../src/main/system.js';
import { freePort, type RunningService, redisAvailable, startRedis } from '../test/support/services.js';
import { emit, isQuick, percentile, printTable } from './lib/report.js';

const BENCH = 'cache';
const quick = isQuick();
const argValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const SCRIPT_BLOCKS = [
  { kind: 'hook', text: '봄맞이 특가! 오늘 하루만 50% 할인된 가격으로 만나보세요.', duration_s: 3 },
  { kind: 'intro', text: '안녕하세요, 여러분의 일상을 바꿀 새로운 제품을 소개합니다.', duration_s: 4 },
  { kind: 'body', text: 'Lightweight, durable, and designed for every season of the year.', duration_s: 6 },
  { kind: 'body', text: '지금 주문하시면 2026년 3월 15일까지 무료 배송 혜택을 드립니다.', duration_s: 5 },
  { kind: 'cta', text: '프로필 링크를 눌러 지금 바로 확인하세요!', duration_s: 3 },
] as const;

function appEnv(dbFile: string, cache: 'memory' | 'off' | string): Record<string, string> {
  return {
    DATABASE_URL: `sqlite:${dbFile}`,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_WRITES_PER_MIN: '1000000',
    AUTH_CACHE_TTL_MS: '600000',
    ...(cache === 'memory' || cache === 'off'
      ? { CACHE_MODE: cache }
      : { CACHE_MODE: 'redis', CACHE_REDIS_URL: cache }),
  };
}

async function openSystem(env: Record<string, string>): Promise<System> {
  const config = loadConfig(env);
  return createSystem(config, createLogger(config));
}

// --- child process: one server per case (b) ------------------------------------------------------

async function serveChild(kind: string, port: number): Promise<void> {
  if (kind === 'hello') {
    const app = Fastify({ logger: false });
    app.get('/hello', async () => ({ hello: 'world' }));
    const payload: unknown = JSON.parse(argValue('--payload') ?? 'null');
    app.get('/payload', async () => payload);
    await app.listen({ port, host: '127.0.0.1' });
  } else {
    const dbFile = argValue('--db') as string;
    const cache = argValue('--cache') as string;
    const system = await openSystem(appEnv(dbFile, cache));
    const app = await buildApp(appDepsFrom(system, { logger: false }));
    await app.listen({ port, host: '127.0.0.1' });
  }
  process.stdout.write('READY\n');
  process.on('SIGTERM', () => process.exit(0));
}

async function startChild(kind: string, extra: string[]): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const self = fileURLToPath(import.meta.url);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', self, '--serve', kind, '--port', String(port), ...extra],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} server did not start in 30 s`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { child, port };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// --- (a) get latency -----------------------------------------------------------------------------

async function timeGets(n: number, get: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await get();
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out;
}

async function waitReady(cache: CacheService): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = await cache.stats();
    if (s.circuit === 'closed' && (!s.l1.enabled || s.l1.connected)) return;
    if (Date.now() > deadline) throw new Error('cache not ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function benchGetLatency(redisUrl: string | undefined, value: unknown): Promise<void> {
  const logger = pino({ level: 'silent' });
  const n = quick ? 10_000 : 100_000;
  const extra = { valueBytes: JSON.stringify(value).length, samples: n };

  const memory = createCacheService(loadCacheConfig({ CACHE_MODE: 'memory' }), logger) as CacheService;
  await memory.set('script', [1], value);
  await timeGets(2000, () => memory.get('script', [1]));
  const mem = (await timeGets(n, () => memory.get('script', [1]))).sort((a, b) => a - b);
  emit({
    bench: BENCH,
    case: 'memory',
    backend: 'memory',
    metric: 'get_p50_us',
    value: percentile(mem, 50),
    unit: 'us',
    p99_us: percentile(mem, 99),
    ...extra,
  });
  await memory.close();

  if (!redisUrl) return;
  const env = { CACHE_MODE: 'redis', CACHE_REDIS_URL: redisUrl };
  const l1 = createCacheService(
    loadCacheConfig({ ...env, CACHE_L1_MAX_ENTRIES: '10000', CACHE_L1_TTL_MS: '600000' }),
    logger,
  ) as CacheService;
  await waitReady(l1);
  await l1.set('script', [1], value);
  await timeGets(2000, () => l1.get('script', [1]));
  const l1Times = (await timeGets(n, () => l1.get('script', [1]))).sort((a, b) => a - b);
  const l1Stats = await l1.stats();
  emit({
    bench: BENCH,
    case: 'l1',
    backend: 'redis+l1',
    metric: 'get_p50_us',
    value: percentile(l1Times, 50),
    unit: 'us',
    p99_us: percentile(l1Times, 99),
    l1_hits: l1Stats.prefixes.script?.l1_hits,
    ...extra,
  });
  await l1.close();

  const remote = createCacheService(
    loadCacheConfig({ ...env, CACHE_L1_MAX_ENTRIES: '0' }),
    logger,
  ) as CacheService;
  await waitReady(remote);
  const raw = new Redis(redisUrl);
  // The script (realistic, ~1.5 KB: JSON.parse is a visible share) and a small value (~60 B).
  const small = { id: 1, title: '봄 세일', status: 'draft', score: 42.5 };
  for (const [suffix, v] of [
    ['', value],
    ['_small', small],
  ] as const) {
    await remote.set('script', [suffix], v);
    const key = remote.key('script', [suffix]);
    await raw.get(key);
    // Interleaved rounds, so drift on a shared machine hits both alike.
    const rounds = quick ? 10 : 40;
    const per = Math.floor(n / rounds / 2) || 1;
    const ours: number[] = [];
    const rawTimes: number[] = [];
    for (let r = 0; r < rounds; r++) {
      ours.push(...(await timeGets(per, () => remote.get('script', [suffix]))));
      rawTimes.push(...(await timeGets(per, () => raw.get(key))));
    }
    ours.sort((a, b) => a - b);
    rawTimes.sort((a, b) => a - b);
    const rawP50 = percentile(rawTimes, 50);
    const sizes = { valueBytes: JSON.stringify(v).length, samples: ours.length };
    emit({
      bench: BENCH,
      case: `raw_redis${suffix}`,
      backend: 'redis',
      metric: 'get_p50_us',
      value: rawP50,
      unit: 'us',
      p99_us: percentile(rawTimes, 99),
      ...sizes,
    });
    emit({
      bench: BENCH,
      case: `redis${suffix}`,
      backend: 'redis',
      metric: 'get_p50_us',
      value: percentile(ours, 50),
      unit: 'us',
      baseline: rawP50,
      p99_us: percentile(ours, 99),
      ...sizes,
    });
  }
  raw.disconnect();
  await remote.close();
}

// --- (b) endpoint throughput -----------------------------------------------------------------------

async function seedOne(dbFile: string): Promise<{ contentId: number; key: string; script: unknown }> {
  const system = await openSystem(appEnv(dbFile, 'off'));
  try {
    const s = system.services;
    const client = await s.clients.create({ name: 'Bench' });
    const campaign = await s.campaigns.create({ client_id: client.id, name: 'Bench', platform: 'youtube' });
    const content = await s.contents.create(campaign.id, { title: '벤치마크 콘텐츠' });
    const script = await s.scripts.replace(
      content.id,
      SCRIPT_BLOCKS.map((b) => ({ ...b })),
    );
    const { key } = await system.apiKeys.create('bench', 'viewer');
    return { contentId: content.id, key, script: JSON.parse(JSON.stringify(script)) };
  } finally {
    await system.close();
  }
}

async function cannon(url: string, key: string | undefined, seconds: number) {
  const r = await autocannon({
    url,
    connections: 50,
    duration: seconds,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p99: r.latency.p99, requests: r.requests.total };
}

async function benchEndpoint(
  dbFile: string,
  seeded: { contentId: number; key: string; script: unknown },
  redisUrl?: string,
): Promise<void> {
  const seconds = quick ? 3 : 15;
  const warm = quick ? 1 : 3;
  const path_ = `/api/v1/contents/${seeded.contentId}/script`;
  const cases: { name: string; backend: string; kind: string; extra: string[]; url: string }[] = [
    { name: 'hello', backend: 'fastify', kind: 'hello', extra: [], url: '/hello' },
    // The same script JSON from a bare route: how much of the gap to hello is the payload itself.
    {
      name: 'hello_payload',
      backend: 'fastify',
      kind: 'hello',
      extra: ['--payload', JSON.stringify(seeded.script)],
      url: '/payload',
    },
    {
      name: 'cached',
      backend: 'memory',
      kind: 'app',
      extra: ['--db', dbFile, '--cache', 'memory'],
      url: path_,
    },
    {
      name: 'uncached',
      backend: 'sqlite',
      kind: 'app',
      extra: ['--db', dbFile, '--cache', 'off'],
      url: path_,
    },
  ];
  if (redisUrl && !quick) {
    cases.push({
      name: 'cached',
      backend: 'redis+l1',
      kind: 'app',
      extra: ['--db', dbFile, '--cache', redisUrl],
      url: path_,
    });
  }
  let helloRps: number | undefined;
  for (const c of cases) {
    const { child, port } = await startChild(c.kind, c.extra);
    try {
      const url = `http://127.0.0.1:${port}${c.url}`;
      const key = c.kind === 'hello' ? undefined : seeded.key;
      await cannon(url, key, warm);
      const r = await cannon(url, key, seconds);
      if (c.name === 'hello') helloRps = r.rps;
      const common = {
        bench: BENCH,
        case: c.name,
        backend: c.backend,
        connections: 50,
        seconds,
        requests: r.requests,
      };
      emit({
        ...common,
        metric: 'rps',
        value: r.rps,
        unit: 'req/s',
        ...(c.name !== 'hello' && helloRps ? { baseline: helloRps } : {}),
      });
      emit({ ...common, metric: 'p99_ms', value: r.p99, unit: 'ms' });
    } finally {
      await stopChild(child);
    }
  }
}

// --- (c) Zipf workload -------------------------------------------------------------------------------

/** Seeds `n` contents with a one-block script each, directly (the API is for the measured part). */
async function seedMany(system: System, n: number): Promise<number[]> {
  const db = system.database.db;
  const now = new Date().toISOString();
  const client = await system.repos.clients.create({
    name: 'zipf',
    brand_color: null,
    industry: null,
    contact_email: null,
  });
  const campaign = await system.services.campaigns.create({
    client_id: client.id,
    name: 'zipf',
    platform: 'youtube',
  });
  const ids: number[] = [];
  const batch = 1000;
  for (let i = 0; i < n; i += batch) {
    const rows = Array.from({ length: Math.min(batch, n - i) }, (_, j) => ({
      campaign_id: campaign.id,
      title: `content ${i + j}`,
      platform: 'youtube' as const,
      status: 'scripted' as const,
      keywords: '[]',
      publish_at: null,
      published_at: null,
      created_at: now,
      updated_at: now,
    }));
    const inserted = await db.insertInto('contents').values(rows).returning('id').execute();
    const blockRows = inserted.map((r) => ({
      content_id: r.id,
      sequence: 1,
      kind: 'body' as const,
      text: `script of ${r.id} v0`,
      subtitle_text: null,
      duration_s: 3,
      background: null,
      transition: null,
      created_at: now,
      updated_at: now,
    }));
    await db.insertInto('script_blocks').values(blockRows).execute();
    ids.push(...inserted.map((r) => r.id));
  }
  return ids;
}

/** Zipf(s) sampler over ranks 0..n-1 from a seeded PRNG (inverse CDF by binary search). */
function zipfSampler(n: number, s: number, seed: number): { next(): number; random(): number } {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / (k + 1) ** s;
    cdf[k] = sum;
  }
  let state = seed >>> 0;
  const rnd = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const next = () => {
    const u = rnd() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return { next, random: rnd };
}

async function benchZipf(
  backend: 'memory' | 'redis+l1',
  redisUrl: string | undefined,
  dir: string,
): Promise<void> {
  const n = quick ? 3_000 : 100_000;
  const ops = quick ? 6_000 : 200_000;
  const dbFile = path.join(dir, `zipf-${backend.replace('+', '-')}.db`);
  const system = await openSystem(appEnv(dbFile, backend === 'memory' ? 'memory' : (redisUrl as string)));
  try {
    await waitReady(system.cache as CacheService);
    await system.cache?.flush();
    const t0 = Date.now();
    const ids = await seedMany(system, n);
    const seedMs = Date.now() - t0;
    const app = await buildApp(appDepsFrom(system, { logger: false }));
    const { key } = await system.apiKeys.create('zipf', 'editor');
    const headers = { authorization: `Bearer ${key}` };
    const truth = createDomainServices(
      system.repos,
      new ChangeFeed(system.logger),
    ); /* reads only: nobody listens */
    const zipf = zipfSampler(n, 1.0, 42);
    const read = async (id: number) => {
      const r = await app.inject({ method: 'GET', url: `/api/v1/contents/${id}/script`, headers });
      if (r.statusCode !== 200) throw new Error(`GET script ${id}: ${r.statusCode}`);
      return r.body;
    };
    // Warm-up: every key read once, so the measured phase shows the steady state.
    for (const id of ids) await read(id);
    const before = (await system.cache!.stats()).prefixes.script!;
    let stale = 0;
    let reads = 0;
    let writes = 0;
    const tRun = Date.now();
    for (let i = 0; i < ops; i++) {
      const id = ids[zipf.next()] as number;
      if (zipf.random() < 0.05) {
        const w = await app.inject({
          method: 'PUT',
          url: `/api/v1/contents/${id}/script`,
          headers,
          payload: { blocks: [{ kind: 'body', text: `script of ${id} v${i + 1}`, duration_s: 3 }] },
        });
        if (w.statusCode !== 200) throw new Error(`PUT script ${id}: ${w.statusCode}`);
        writes++;
      } else {
        const body = await read(id);
        reads++;
        if (!isDeepStrictEqual(JSON.parse(body), JSON.parse(JSON.stringify(await truth.scripts.get(id)))))
          stale++;
      }
    }
    const runMs = Date.now() - tRun;
    const after = (await system.cache!.stats()).prefixes.script!;
    const hits = after.hits - before.hits;
    const misses = after.misses - before.misses;
    const common = {
      bench: BENCH,
      case: 'zipf',
      backend,
      keys: n,
      ops,
      reads,
      writes,
      zipf_s: 1.0,
      seed_ms: seedMs,
      run_ms: runMs,
    };
    emit({
      ...common,
      metric: 'hit_rate',
      value: hits / (hits + misses),
      unit: 'ratio',
      hits,
      misses,
      note: 'after one warm-up read of every key',
    });
    emit({ ...common, metric: 'stale_reads', value: stale, unit: 'count' });
    await app.close();
  } finally {
    await system.close();
  }
}

// --- main ----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-cache-bench-'));
  let redis: RunningService | undefined;
  try {
    if (redisAvailable()) redis = await startRedis();
    else process.stderr.write('redis-server not found: Redis cases are skipped\n');
    const dbFile = path.join(dir, 'endpoint.db');
    const seeded = await seedOne(dbFile);
    // --only get|endpoint|zipf runs one part (for iterating on it); the default runs all three.
    const only = argValue('--only');
    if (!only || only === 'get') await benchGetLatency(redis?.url, seeded.script);
    if (!only || only === 'endpoint') await benchEndpoint(dbFile, seeded, redis?.url);
    if (!only || only === 'zipf') {
      await benchZipf('memory', undefined, dir);
      if (redis) await benchZipf('redis+l1', redis.url, dir);
    }
  } finally {
    await redis?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable();
  process.stderr.write(
    `\ncache bench finished in ${((Date.now() - started) / 1000).toFixed(1)} s${quick ? ' (--quick)' : ''}\n`,
  );
}

const serveKind = argValue('--serve');
if (serveKind !== undefined) await serveChild(serveKind, Number(argValue('--port')));
else await main();

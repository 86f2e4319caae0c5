/**
 * Traces in one process, exported over OTLP to a receiver inside the test (the exporter's real wire
 * format, decoded from protobuf): request spans continuing `traceparent`, database statements on
 * each dialect, cache reads, jobs (parenthood for one enqueue, links for fan-out and scheduled jobs,
 * one span per attempt), log lines and exemplars carrying the ids, and what is never traced.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { startWorker } from '../../src/main/worker.js';
import { workerDefaults } from '../../src/main/worker-flags.js';
import type { Worker } from '../../src/jobs/worker/worker.js';
import { until } from '../jobs/helpers.js';
import { espeakGeneration, seedContent } from '../media/media-fixtures.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { freePort } from '../support/services.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../support/otlp-receiver.js';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const traceparent = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(() => receiver.close());

const ofTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);

/** Every span of the trace reaches `root` through its parents. */
function descendsFrom(spans: ReceivedSpan[], s: ReceivedSpan, root: ReceivedSpan): boolean {
  const byId = new Map(spans.map((x) => [x.spanId, x]));
  for (let at: ReceivedSpan | undefined = s; at; at = byId.get(at.parentSpanId))
    if (at.spanId === root.spanId) return true;
  return false;
}

interface Traced {
  system: System;
  app: FastifyInstance;
  admin: string;
  logFile: string;
  close(): Promise<void>;
}

async function tracedApp(backend: 'sqlite' | 'postgres', env: Record<string, string> = {}): Promise<Traced> {
  const db = await freshDatabaseConfig(backend);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-traces-'));
  const logFile = path.join(dataDir, 'app.log');
  const config = loadConfig({
    DATA_DIR: dataDir,
    DATABASE_URL: db.dialect === 'sqlite' ? `sqlite:${path.join(dataDir, 'db.sqlite')}` : db.url,
    LOG_LEVEL: 'info',
    RATE_LIMIT_WRITES_PER_MIN: '1000000',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '20',
    OTEL_SERVICE_NAME: 'omnivibe-test',
    ...env,
  });
  const system = await createSystem(config, createLogger(config, logFile));
  const app = await buildApp(appDepsFrom(system));
  const admin = (await system.apiKeys.create('traces admin', 'admin')).key;
  return {
    system,
    app,
    admin,
    logFile,
    async close() {
      await app.close();
      await system.close();
    },
  };
}

describe.each(dbBackends())('traces in one process: %s', (backend) => {
  let t: Traced;
  let worker: Worker | undefined;
  beforeAll(async () => {
    t = await tracedApp(backend);
  });
  afterAll(async () => {
    await worker?.stop({ timeoutMs: 2000 });
    await t.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${t.admin}`, ...headers } });

  it('a request continues its traceparent, answers its trace id, and its statements and cache reads are its children', async () => {
    // A campaign to list: an empty list is not cached (no negative caching there).
    await seedContent(t.system.database.db, ['캠페인 하나.']);
    const traceId = hex(16);
    const parent = hex(8);
    const first = await get('/api/v1/campaigns', { traceparent: traceparent(traceId, parent) });
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-trace-id']).toBe(traceId);
    const server = await receiver.waitFor((s) => s.traceId === traceId && s.kind === SERVER);
    expect(server.parentSpanId).toBe(parent);
    expect(server.name).toBe('GET /api/v1/campaigns');
    expect(server.attributes['http.route']).toBe('/api/v1/campaigns');
    expect(server.attributes['http.response.status_code']).toBe(200);
    expect(server.service).toBe('omnivibe-test');

    const system = backend === 'sqlite' ? 'sqlite' : 'postgresql';
    const statement = await receiver.waitFor(
      (s) =>
        s.traceId === traceId &&
        s.name === 'db select' &&
        String(s.attributes['db.query.text']).includes('campaigns'),
    );
    expect(statement.kind).toBe(CLIENT);
    expect(statement.attributes['db.system.name']).toBe(system);
    expect(descendsFrom(ofTrace(traceId), statement, server)).toBe(true);
    const miss = await receiver.waitFor((s) => s.traceId === traceId && s.name === 'cache campaign_list');
    expect(miss.attributes['omnivibe.cache.hit']).toBe(false);
    expect(miss.parentSpanId).toBe(server.spanId);
    // The statement that filled the cache ran inside the read's span.
    expect(descendsFrom(ofTrace(traceId), statement, miss)).toBe(true);

    const again = await get('/api/v1/campaigns');
    const second = again.headers['x-trace-id'] as string;
    expect(second).toMatch(/^[0-9a-f]{32}$/);
    expect(second).not.toBe(traceId);
    const hit = await receiver.waitFor((s) => s.traceId === second && s.name === 'cache campaign_list');
    expect(hit.attributes['omnivibe.cache.hit']).toBe(true);
  });

  it('a statement outside any traced operation makes no span', async () => {
    const before = receiver.spans.length;
    await t.system.database.ping();
    const marker = (await get('/api/v1/clients')).headers['x-trace-id'] as string;
    await receiver.waitFor((s) => s.traceId === marker && s.kind === SERVER);
    const late = receiver.spans.slice(before);
    expect(late.filter((s) => s.attributes['db.query.text'] === 'select 1')).toEqual([]);
  });

  it('/health, /ready and /metrics are never traced', async () => {
    const traceId = hex(16);
    const headers = { traceparent: traceparent(traceId, hex(8)) };
    for (const url of ['/health', '/ready', '/metrics']) {
      const res = await get(url, headers);
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-trace-id']).toBeUndefined();
    }
    // A traced request after them: once its span is in, theirs would be too.
    const marker = (await get('/api/v1/clients')).headers['x-trace-id'] as string;
    await receiver.waitFor((s) => s.traceId === marker && s.kind === SERVER);
    expect(ofTrace(traceId)).toEqual([]);
    expect(receiver.spans.filter((s) => /\/(health|ready|metrics)$/.test(s.name))).toEqual([]);
  });

  it('log lines written inside a span carry its trace_id and span_id', async () => {
    const res = await get('/api/v1/clients');
    const traceId = res.headers['x-trace-id'] as string;
    const server = await receiver.waitFor((s) => s.traceId === traceId && s.kind === SERVER);
    let line: { trace_id?: string; span_id?: string; msg?: string } | undefined;
    await until(() => {
      line = fs
        .readFileSync(t.logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string; msg?: string })
        .find((l) => l.msg === 'request completed' && l.trace_id === traceId);
      return line !== undefined;
    }, 5000);
    expect(line?.span_id).toBe(server.spanId);
    // A line logged outside any span has no trace id.
    t.system.logger.info('outside any span');
    await until(() => fs.readFileSync(t.logFile, 'utf8').includes('outside any span'), 5000);
    const outside = fs
      .readFileSync(t.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('outside any span'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(outside[0]).not.toHaveProperty('trace_id');
  });

  it('OpenMetrics histogram buckets carry the trace id of a request that fell in them', async () => {
    const traced = (await get('/api/v1/campaigns')).headers['x-trace-id'] as string;
    const res = await get('/metrics', { accept: 'application/openmetrics-text; version=1.0.0' });
    const lines = res.body
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('http_server_request_duration_seconds_bucket{') &&
          l.includes('route="/api/v1/campaigns"'),
      );
    const exemplars = lines.filter((l) => / # \{trace_id="[0-9a-f]{32}"\} [0-9.e-]+ \d+\.\d{3}$/.test(l));
    expect(exemplars.length).toBeGreaterThan(0);
    expect(exemplars.some((l) => l.includes(`trace_id="${traced}"`))).toBe(true);
    // The Prometheus text format has none.
    const text = await get('/metrics');
    expect(text.body).not.toContain('trace_id=');
  });

  it('an enqueue is a producer span and each attempt a consumer span in the same trace; retries are new attempts', async () => {
    worker = startWorker(t.system, t.system.jobs, { ...workerDefaults(t.system.config), concurrency: 2 });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: { authorization: `Bearer ${t.admin}` },
      payload: { name: 'diagnostics.fail', payload: { mode: 'transient', times: 1 } },
    });
    expect(res.statusCode).toBe(202);
    const traceId = res.headers['x-trace-id'] as string;
    const taskId = (res.json() as { task_id: string }).task_id;
    const server = await receiver.waitFor((s) => s.traceId === traceId && s.kind === SERVER);
    const producer = await receiver.waitFor((s) => s.traceId === traceId && s.kind === PRODUCER);
    expect(producer.name).toBe('enqueue diagnostics.fail');
    expect(producer.parentSpanId).toBe(server.spanId);
    expect(producer.attributes['messaging.message.id']).toBe(taskId);
    const second = await receiver.waitFor(
      (s) => s.traceId === traceId && s.kind === CONSUMER && s.attributes['omnivibe.job.attempt'] === 2,
    );
    const first = ofTrace(traceId).find(
      (s) => s.kind === CONSUMER && s.attributes['omnivibe.job.attempt'] === 1,
    );
    expect(first?.parentSpanId).toBe(producer.spanId);
    expect(first?.attributes['omnivibe.job.outcome']).toBe('retrying');
    expect(first?.status).toBe(2);
    expect(second.parentSpanId).toBe(producer.spanId);
    expect(second.attributes['omnivibe.job.outcome']).toBe('completed');
    expect(second.name).toBe('process diagnostics.fail');
    // The attempt's statements (task_runs) are not children of the request: they follow it in the trace.
    expect(second.attributes['messaging.message.id']).toBe(taskId);
  });

  it('a request its caller did not sample records nothing, and its task follows that decision but logs its trace id', async () => {
    const traceId = hex(16);
    const caller = hex(8);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: { authorization: `Bearer ${t.admin}`, traceparent: `00-${traceId}-${caller}-00` },
      payload: { name: 'diagnostics.noop' },
    });
    expect(res.statusCode).toBe(202);
    expect(res.headers['x-trace-id']).toBe(traceId);
    const taskId = (res.json() as { task_id: string }).task_id;
    let finished: { trace_id?: string } | undefined;
    await until(() => {
      finished = fs
        .readFileSync(t.logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg?: string; jobId?: string; trace_id?: string })
        .find((l) => l.msg === 'task finished' && l.jobId === taskId);
      return finished !== undefined;
    }, 10_000);
    expect(finished?.trace_id).toBe(traceId);
    // A sampled request after it: once its spans are in, the unsampled ones would be too.
    const marker = (await get('/api/v1/clients')).headers['x-trace-id'] as string;
    await receiver.waitFor((s) => s.traceId === marker && s.kind === SERVER);
    expect(ofTrace(traceId)).toEqual([]);
  });

  it('fan-out and scheduled jobs link to their producer instead of growing its trace', async () => {
    // Task ids restart with each backend's fresh queue: only spans received from here on are this run's.
    const since = receiver.spans.length;
    const fresh = (s: ReceivedSpan) => receiver.spans.indexOf(s) >= since;
    const bulk = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tasks/bulk',
      headers: { authorization: `Bearer ${t.admin}` },
      payload: { tasks: [{ name: 'diagnostics.noop' }, { name: 'diagnostics.noop' }] },
    });
    expect(bulk.statusCode).toBe(202);
    const bulkTrace = bulk.headers['x-trace-id'] as string;
    const producer = await receiver.waitFor((s) => s.traceId === bulkTrace && s.kind === PRODUCER);
    expect(producer.attributes['messaging.batch.message_count']).toBe(2);
    const ids = (bulk.json() as { items: { task_id: string }[] }).items.map((i) => i.task_id);
    for (const id of ids) {
      const attempt = await receiver.waitFor(
        (s) => s.kind === CONSUMER && s.attributes['messaging.message.id'] === id && fresh(s),
      );
      expect(attempt.traceId).not.toBe(bulkTrace);
      expect(attempt.parentSpanId).toBe('');
      expect(attempt.links).toEqual([{ traceId: bulkTrace, spanId: producer.spanId }]);
    }

    const delayed = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: { authorization: `Bearer ${t.admin}` },
      payload: { name: 'diagnostics.noop', delay_ms: 50 },
    });
    const delayedTrace = delayed.headers['x-trace-id'] as string;
    const id = (delayed.json() as { task_id: string }).task_id;
    const scheduled = await receiver.waitFor(
      (s) => s.kind === CONSUMER && s.attributes['messaging.message.id'] === id && fresh(s),
    );
    const scheduler = ofTrace(delayedTrace).find((s) => s.kind === PRODUCER);
    expect(scheduled.traceId).not.toBe(delayedTrace);
    expect(scheduled.links).toEqual([{ traceId: delayedTrace, spanId: scheduler?.spanId }]);
  });

  // The media pipeline does not depend on the database dialect: once is enough.
  it.skipIf(backend !== dbBackends()[0])(
    'narration: a span per attempt with its verdict, vendor calls with units and cost; renders with their preset; audio.batch contents linked',
    async () => {
      const media = t.system.media;
      const seeded = await seedContent(t.system.database.db, ['안녕하세요.', '오늘의 커피를 소개합니다.']);
      const gen = await espeakGeneration(media.repo, seeded.contentId);
      const out = await media.narration.narrate({ generationId: gen.id, maxAttempts: 1 });
      const attempt = await receiver.waitFor(
        (s) => s.name === 'narration.attempt' && s.attributes['omnivibe.narration.generation_id'] === gen.id,
      );
      expect(attempt.attributes['omnivibe.narration.attempt']).toBe(1);
      expect(attempt.attributes['omnivibe.narration.provider']).toBe('espeak');
      expect(attempt.attributes['omnivibe.narration.score']).toBeCloseTo(out.score ?? -1, 3);
      const calls = ofTrace(attempt.traceId).filter(
        (s) => s.parentSpanId === attempt.spanId && s.kind === CLIENT,
      );
      const tts = calls.filter((s) => s.name === 'tts espeak');
      expect(tts).toHaveLength(2);
      for (const c of tts) {
        expect(c.attributes['omnivibe.vendor.unit']).toBe('char');
        expect(c.attributes['omnivibe.vendor.units']).toBeGreaterThan(0);
        expect(typeof c.attributes['omnivibe.vendor.cost_usd']).toBe('number');
        expect(c.endNs).toBeGreaterThanOrEqual(c.startNs);
      }
      // The usage rows it wrote are its statements.
      expect(calls.some((s) => s.name === 'db insert')).toBe(true);

      const row = await media.repo.createRender({
        content_id: seeded.contentId,
        preset: 'tiktok',
        width: 1080,
        height: 1920,
        fps: 30,
      });
      await media.renders.render({ renderId: row.id, quality: 'low', silent: true });
      const render = await receiver.waitFor(
        (s) => s.name === 'render.ffmpeg' && s.attributes['omnivibe.render.id'] === row.id,
      );
      expect(render.attributes['omnivibe.render.preset']).toBe('tiktok');
      expect(render.attributes['omnivibe.render.quality']).toBe('low');

      // audio.batch (run by the worker started above): each content a trace of its own, linked to the attempt.
      const other = await seedContent(t.system.database.db, ['두 번째 콘텐츠입니다.']);
      const { id } = await t.system.jobs.enqueue('audio.batch', {
        content_ids: [seeded.contentId, other.contentId],
        provider: 'espeak',
        max_attempts: 1,
      });
      const batch = await receiver.waitFor(
        (s) => s.kind === CONSUMER && s.attributes['messaging.message.id'] === id,
        60_000,
      );
      const itemsOf = () =>
        receiver.spans.filter(
          (s) => s.name === 'audio.batch.item' && s.links.some((l) => l.spanId === batch.spanId),
        );
      await until(() => itemsOf().length === 2, 10_000, 'both batch items');
      const items = itemsOf();
      expect(items.map((i) => i.attributes['omnivibe.content_id']).sort()).toEqual(
        [seeded.contentId, other.contentId].sort(),
      );
      for (const item of items) {
        expect(item.traceId).not.toBe(batch.traceId);
        expect(item.parentSpanId).toBe('');
        expect(
          ofTrace(item.traceId).some((s) => s.name === 'narration.attempt' && s.parentSpanId === item.spanId),
        ).toBe(true);
      }
    },
    120_000,
  );
});

describe('an OTLP endpoint that cannot be reached', () => {
  /** Requests in a row; the slowest, ms. */
  async function slowest(app: FastifyInstance, admin: string, n: number): Promise<number> {
    let max = 0;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await app.inject({
        method: 'GET',
        url: '/api/v1/clients',
        headers: { authorization: `Bearer ${admin}` },
      });
      max = Math.max(max, performance.now() - t0);
      expect(res.statusCode).toBe(200);
    }
    return max;
  }

  it('refused connections: requests go on, the failure is logged once', async () => {
    // A port nothing listens on (picked by the kernel, then closed).
    const closed = await freePort();
    const backend = dbBackends()[0] as 'sqlite' | 'postgres';
    const t = await tracedApp(backend, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
      OTEL_BSP_SCHEDULE_DELAY: '10',
    });
    try {
      const t0 = performance.now();
      const max = await slowest(t.app, t.admin, 200);
      const total = performance.now() - t0;
      // An export waited for would take seconds (its timeout is 10 s): requests never do.
      expect(max).toBeLessThan(1000);
      expect(total).toBeLessThan(20_000);
      await until(() => fs.readFileSync(t.logFile, 'utf8').includes('trace export failed'), 20_000);
      await slowest(t.app, t.admin, 20);
      await new Promise((r) => setTimeout(r, 300));
      const failures = fs
        .readFileSync(t.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('trace export failed'));
      expect(failures).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it('a collector that never answers: requests go on while exports wait, spans past the queue are dropped', async () => {
    const sockets = new Set<net.Socket>();
    const silent = http.createServer(() => undefined);
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const backend = dbBackends()[0] as 'sqlite' | 'postgres';
    const t = await tracedApp(backend, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '30000',
      OTEL_BSP_SCHEDULE_DELAY: '10',
      OTEL_BSP_MAX_QUEUE_SIZE: '50',
    });
    try {
      const max = await slowest(t.app, t.admin, 300);
      expect(max).toBeLessThan(1000);
    } finally {
      for (const s of sockets) s.destroy();
      await t.close();
      silent.closeAllConnections();
      silent.close();
    }
  });
});

/**
 * The live summary on each database: figures published by several processes (recorders) merge
 * into one summary; percentiles are within 2 % of the exact percentiles of the same recorded
 * latencies; the window is honoured; AI spend comes from ai_api_usage; the routes answer and
 * refuse a bad window naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silent } from '../jobs/helpers.js';
import { LivePublisher } from '../../src/telemetry/live-publisher.js';
import { LiveRecorder } from '../../src/telemetry/live-recorder.js';
import { LiveSummary } from '../../src/telemetry/live-summary.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { dbBackends } from '../support/backends.js';

/** A deterministic spread of latencies (0.2 ms .. ~2 s, log-uniform-ish), seconds. */
function latencies(n: number, seed: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push(0.0002 * Math.exp((x / 2 ** 31) * 9.2));
  }
  return out;
}

/** The exact quantile at the same rank DDSketch uses: the value at floor(q * (n - 1)) of the sorted values. */
const exact = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.floor(q * (values.length - 1))] as number;
const within2pct = (got: number | null, want: number) => {
  expect(got).not.toBeNull();
  expect(Math.abs((got as number) - want) / want).toBeLessThanOrEqual(0.02);
};

describe.each(dbBackends())('live summary: %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('merges the figures of several processes, with percentiles within 2 % of exact', async () => {
    const db = t.system.database.db;
    await db.deleteFrom('telemetry_samples').execute();
    const routeA = latencies(6000, 7);
    const routeB = latencies(4000, 11).map((v) => v * 3);
    const waits = latencies(3000, 13);
    // Four processes (two APIs, two workers), each with part of the observations.
    const procs = [0, 1, 2, 3].map((i) => {
      const recorder = new LiveRecorder();
      const publisher = new LivePublisher({
        db,
        recorder,
        intervalMs: 60_000,
        logger: silent,
        process: `p${i}`,
      });
      publisher.begin(i < 2 ? 'api' : 'worker');
      return { recorder, publisher };
    });
    routeA.forEach((v, i) =>
      procs[i % 2]?.recorder.http('GET', '/api/v1/campaigns/:id', i % 50 === 0 ? 503 : 200, v),
    );
    routeB.forEach((v, i) => procs[i % 2]?.recorder.http('POST', '/api/v1/campaigns', 201, v));
    waits.forEach((v, i) =>
      procs[2 + (i % 2)]?.recorder.job(
        'default',
        'diagnostics.noop',
        i % 10 === 0 ? 'failed' : 'completed',
        v,
        v / 2,
      ),
    );
    procs[2]?.recorder.cache('campaign', 'hit', 30);
    procs[3]?.recorder.cache('campaign', 'miss', 10);
    procs[0]?.recorder.db(0.002, false);
    procs[1]?.recorder.db(2, true);
    for (const p of procs) await p.publisher.close();

    const s = await t.system.telemetry!.summary.summary('5m');
    expect(s.processes).toBe(4);
    expect(s.http.requests).toBe(routeA.length + routeB.length);
    expect(s.http.rps).toBeCloseTo((routeA.length + routeB.length) / 300, 2);
    expect(s.http.error_rate).toBeCloseTo(120 / 10_000, 4);
    const all = [...routeA, ...routeB];
    within2pct(s.http.p50_ms, exact(all, 0.5) * 1000);
    within2pct(s.http.p90_ms, exact(all, 0.9) * 1000);
    within2pct(s.http.p99_ms, exact(all, 0.99) * 1000);
    const a = s.http.routes.find((r) => r.route === '/api/v1/campaigns/:id');
    expect(a).toMatchObject({ method: 'GET', requests: 6000, error_rate: 0.02 });
    within2pct(a?.p99_ms ?? null, exact(routeA, 0.99) * 1000);
    within2pct(s.http.routes.find((r) => r.method === 'POST')?.p50_ms ?? null, exact(routeB, 0.5) * 1000);
    expect(s.http.routes[0]?.requests).toBe(6000); // busiest first

    const task = s.jobs.tasks.find((x) => x.task === 'diagnostics.noop');
    expect(task).toMatchObject({ queue: 'default', completed: 2700, failed: 300, failure_rate: 0.1 });
    within2pct(task?.wait_p99_ms ?? null, exact(waits, 0.99) * 1000);
    within2pct(task?.run_p50_ms ?? null, (exact(waits, 0.5) / 2) * 1000);
    expect(s.jobs.finished).toBe(3000);
    expect(s.jobs.queues.map((q) => q.queue)).toEqual(['high_priority', 'default', 'low_priority']);
    expect(s.jobs.queues.find((q) => q.queue === 'default')?.failure_rate).toBe(0.1);
    expect(s.cache.prefixes).toEqual([
      { prefix: 'campaign', hit: 30, miss: 10, stale: 0, error: 0, hit_rate: 0.75 },
    ]);
    // Each publisher's own insert is a statement too; the two recorded above are among them.
    expect(s.db.queries).toBeGreaterThanOrEqual(2);
    expect(s.db.slow_queries).toBe(1);
  });

  it('keeps to the window', async () => {
    const db = t.system.database.db;
    await db.deleteFrom('telemetry_samples').execute();
    const now = Date.now();
    const figures = (n: number) => {
      const r = new LiveRecorder();
      for (let i = 0; i < n; i++) r.http('GET', '/health', 200, 0.001);
      return JSON.stringify(r.take());
    };
    await db
      .insertInto('telemetry_samples')
      .values([
        { process: 'old', role: 'api', start_ms: now - 600_000, end_ms: now - 590_000, figures: figures(5) },
        { process: 'new', role: 'api', start_ms: now - 40_000, end_ms: now - 30_000, figures: figures(3) },
      ])
      .execute();
    const summary = t.system.telemetry!.summary;
    expect((await summary.summary('1m')).http.requests).toBe(3);
    expect((await summary.summary('15m')).http.requests).toBe(8);
    expect((await summary.summary('15m')).processes).toBe(2);
  });

  it('merges whole minutes once, and takes in a row that arrives late into a merged minute', async () => {
    const db = t.system.database.db;
    await db.deleteFrom('telemetry_samples').execute();
    const now = Math.floor(Date.now() / 60_000) * 60_000 + 30_000;
    const summary = new LiveSummary({ db, counts: () => t.system.jobs.admin.counts(), now: () => now });
    const row = (process: string, endMs: number, latency: number, n: number) => {
      const r = new LiveRecorder();
      for (let i = 0; i < n; i++) r.http('GET', '/late', 200, latency);
      return {
        process,
        role: 'api',
        start_ms: endMs - 5_000,
        end_ms: endMs,
        figures: JSON.stringify(r.take()),
      };
    };
    // Two minutes back (a whole minute inside the 5 m window), and the minute the window starts in.
    await db
      .insertInto('telemetry_samples')
      .values(row('a', now - 140_000, 0.01, 10))
      .execute();
    await db
      .insertInto('telemetry_samples')
      .values(row('a', now - 290_000, 0.05, 5))
      .execute();
    const first = await summary.summary('5m');
    expect(first.http.requests).toBe(15);
    // Late into the merged minute: counted, with its latencies in the percentiles.
    await db
      .insertInto('telemetry_samples')
      .values(row('b', now - 135_000, 2, 30))
      .execute();
    const second = await summary.summary('5m');
    expect(second.http.requests).toBe(45);
    expect(second.processes).toBe(2);
    expect(Math.abs((second.http.p90_ms ?? 0) / 2000 - 1)).toBeLessThan(0.02);
    // Gone from the database (pruned): gone from the figures, merged minute or not.
    await db.deleteFrom('telemetry_samples').where('process', '=', 'b').execute();
    expect((await summary.summary('5m')).http.requests).toBe(15);
  });

  it('reports AI spend in the window, today and this month, per provider and for the top campaigns', async () => {
    const db = t.system.database.db;
    const client = await t.system.services.clients.create({ name: 'Spend Co' });
    const campaign = await t.system.services.campaigns.create({
      client_id: client.id,
      name: 'Spend',
      platform: 'tiktok',
    });
    const now = Date.now();
    const at = (agoMs: number) => new Date(now - agoMs).toISOString();
    const startOfMonth = new Date(
      Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1),
    ).getTime();
    const row = (provider: string, cost: number, created: string) => ({
      provider,
      model: 'm',
      operation: 'tts',
      units: 1,
      unit: 'char',
      cost_usd: cost,
      campaign_id: campaign.id,
      created_at: created,
      updated_at: created,
    });
    await db
      .insertInto('ai_api_usage')
      .values([
        row('openai', 0.5, at(10_000)),
        row('openai', 0.25, at(30 * 60_000)),
        row('elevenlabs', 2, at(Math.min(now - startOfMonth - 1000, 10 * 60_000))),
        row('elevenlabs', 100, new Date(startOfMonth - 86_400_000).toISOString()),
      ])
      .execute();
    const s = await t.system.telemetry!.summary.summary('5m');
    expect(s.ai_cost.window_usd).toBe(0.5);
    expect(s.ai_cost.month_usd).toBe(2.75);
    const openai = s.ai_cost.by_provider.find((p) => p.key === 'openai');
    expect(openai).toMatchObject({ window_usd: 0.5, month_usd: 0.75 });
    expect(s.ai_cost.top_campaigns[0]).toMatchObject({ key: String(campaign.id), month_usd: 2.75 });
  });

  it('answers on the API for viewers and refuses an unknown window naming the field', async () => {
    const ok = await t.app.inject({
      method: 'GET',
      url: '/api/v1/observability/summary?window=1h',
      headers: t.as('viewer'),
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ window: '1h', window_s: 3600 });
    const bad = await t.app.inject({
      method: 'GET',
      url: '/api/v1/observability/summary?window=2m',
      headers: t.as('viewer'),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'window' } });
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/observability/summary' })).statusCode).toBe(
      401,
    );
  });
});

describe.runIf(dbBackends().includes('sqlite'))('live summary stream', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp('sqlite');
    await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('needs a key, and pushes summary events', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/observability/stream' })).statusCode).toBe(401);
    const { port } = t.app.server.address() as { port: number };
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/observability/stream?window=1m`, {
      headers: t.as('viewer'),
      signal: ac.signal,
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text.startsWith('event: summary\ndata: ')).toBe(true);
    const data = JSON.parse(text.split('\n')[1]!.slice('data: '.length)) as { window: string };
    expect(data.window).toBe('1m');
  });
});

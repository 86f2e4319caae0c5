/**
 * The live figures as time series on each database: rows of several processes land in the bucket
 * their interval ended in and merge there (counts add, percentiles from the merged sketches, queue
 * samples take the largest), AI spend comes per provider from ai_api_usage, and the API answers
 * viewers and refuses a bad window or step naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveRecorder } from '../../src/telemetry/live-recorder.js';
import { LiveSummary } from '../../src/telemetry/live-summary.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { dbBackends } from '../support/backends.js';

const STEP = 60_000;

describe.each(dbBackends())('live series: %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('puts every process’s rows into buckets and merges them', async () => {
    const db = t.system.database.db;
    await db.deleteFrom('telemetry_samples').execute();
    const now = Date.now();
    const end = Math.ceil(now / STEP) * STEP;
    // Two processes in the bucket ten minutes back, one in the newest bucket.
    const old = end - 10 * STEP + 5_000;
    const interval = (fill: (r: LiveRecorder) => void) => {
      const r = new LiveRecorder();
      fill(r);
      return JSON.stringify(r.take());
    };
    const a = interval((r) => {
      for (let i = 0; i < 90; i++) r.http('GET', '/api/v1/campaigns', 200, 0.01);
      for (let i = 0; i < 10; i++) r.http('GET', '/api/v1/campaigns', 503, 1);
      r.job('default', 'diagnostics.noop', 'completed', 0.1, 0.2);
      r.job('default', 'diagnostics.noop', 'failed', 0.1, 0.2);
      r.cache('campaign', 'hit', 3);
      r.queue('default', { waiting: 4, oldest_s: 2.5 });
    });
    const b = interval((r) => {
      for (let i = 0; i < 60; i++) r.http('POST', '/api/v1/campaigns', 201, 0.1);
      r.job('high_priority', 'diagnostics.sleep_high', 'completed', 0.1, 0.2);
      r.cache('campaign', 'miss', 1);
      r.queue('default', { waiting: 7, oldest_s: 1 });
    });
    const c = interval((r) => r.http('GET', '/health', 200, 0.001));
    await db
      .insertInto('telemetry_samples')
      .values([
        { process: 'api-1', role: 'api', start_ms: old - 5_000, end_ms: old, figures: a },
        { process: 'worker-1', role: 'worker', start_ms: old - 5_000, end_ms: old + 1, figures: b },
        { process: 'api-1', role: 'api', start_ms: now - 1_000, end_ms: now, figures: c },
        // Older than the window: left out.
        { process: 'api-1', role: 'api', start_ms: end - 70 * STEP, end_ms: end - 65 * STEP, figures: a },
      ])
      .execute();
    const at = (ago: number) => new Date(end - ago).toISOString();
    const usage = (provider: string, cost: number, created: string) => ({
      provider,
      model: 'm',
      operation: 'tts',
      units: 1,
      unit: 'char',
      cost_usd: cost,
      created_at: created,
      updated_at: created,
    });
    await db.deleteFrom('ai_api_usage').execute();
    await db
      .insertInto('ai_api_usage')
      .values([
        usage('openai', 0.25, at(10 * STEP - 2_000)),
        usage('openai', 0.5, at(10 * STEP - 3_000)),
        usage('elevenlabs', 2, at(3 * STEP - 1_000)),
        usage('elevenlabs', 100, at(2 * 3_600_000)),
      ])
      .execute();

    // A summary whose clock stands still, so the buckets cannot move under the test.
    const summary = new LiveSummary({ db, counts: () => t.system.jobs.admin.counts(), now: () => now });
    const s = await summary.series(3_600_000, STEP);
    expect(s.step_s).toBe(60);
    expect(s.t).toHaveLength(60);
    expect(s.t.at(-1)).toBe((end - STEP) / 1000);
    const i = s.t.indexOf((end - 10 * STEP) / 1000);
    expect(i).toBe(50);
    expect(s.http.rps[i]).toBeCloseTo(160 / 60, 3);
    expect(s.http.error_rate[i]).toBe(0.0625);
    // 90 at 10 ms, 60 at 100 ms, 10 at 1 s: within the sketch's 1 %.
    const near = (got: number | null | undefined, want: number) =>
      expect(Math.abs((got ?? 0) / want - 1)).toBeLessThan(0.02);
    near(s.http.p50_ms[i], 10);
    near(s.http.p90_ms[i], 100);
    near(s.http.p99_ms[i], 1000);
    expect(s.http.rps[i - 1]).toBe(0);
    expect(s.http.error_rate[i - 1]).toBeNull();
    // The newest bucket is still filling: its rate is per second passed so far.
    expect(s.http.rps[59]).toBeGreaterThan(0);
    near(s.http.p50_ms[59], 1);

    const queue = (name: string) => s.queues.find((q) => q.queue === name);
    expect(s.queues.map((q) => q.queue)).toEqual(['high_priority', 'default', 'low_priority']);
    expect(queue('default')?.throughput_per_s[i]).toBeCloseTo(2 / 60, 3);
    expect(queue('default')?.failures_per_s[i]).toBeCloseTo(1 / 60, 3);
    expect(queue('high_priority')?.throughput_per_s[i]).toBeCloseTo(1 / 60, 3);
    expect(queue('default')?.waiting[i]).toBe(7);
    expect(queue('default')?.oldest_waiting_s[i]).toBe(2.5);
    expect(queue('default')?.waiting[i - 1]).toBeNull();
    expect(s.cache.hit_rate[i]).toBe(0.75);

    expect(s.ai_cost.map((p) => p.provider)).toEqual(['elevenlabs', 'openai']);
    const cost = (p: string) => s.ai_cost.find((x) => x.provider === p)?.usd ?? [];
    expect(cost('openai')[i]).toBe(0.75);
    expect(cost('elevenlabs')[57]).toBe(2);
    expect(cost('elevenlabs').reduce((x, y) => x + y, 0)).toBe(2);
  });

  it('gives the same figures at every step: minutes kept for the summary, merged rows below a minute', async () => {
    const db = t.system.database.db;
    await db.deleteFrom('telemetry_samples').execute();
    await db.deleteFrom('ai_api_usage').execute();
    // On a two-minute boundary plus a second: the 60 s and 120 s grids both start on a minute.
    const now = Math.floor(Date.now() / 120_000) * 120_000 + 1_000;
    const pair = now - 1_000 - 4 * STEP; // a 120 s bucket: the minute at `pair` and the next one
    const interval = (fill: (r: LiveRecorder) => void) => {
      const r = new LiveRecorder();
      fill(r);
      return JSON.stringify(r.take());
    };
    const row = (process: string, endMs: number, figures: string) => ({
      process,
      role: 'api',
      start_ms: endMs - 5_000,
      end_ms: endMs,
      figures,
    });
    await db
      .insertInto('telemetry_samples')
      .values([
        row(
          'api-1',
          pair + 5_000,
          interval((r) => {
            for (let i = 0; i < 90; i++) r.http('GET', '/api/v1/campaigns', 200, 0.01);
            r.queue('default', { waiting: 4, oldest_s: 2.5 });
          }),
        ),
        row(
          'api-2',
          pair + 40_000,
          interval((r) => {
            for (let i = 0; i < 10; i++) r.http('GET', '/api/v1/campaigns', 503, 1);
          }),
        ),
        row(
          'api-1',
          pair + STEP + 5_000,
          interval((r) => {
            for (let i = 0; i < 60; i++) r.http('POST', '/api/v1/campaigns', 201, 0.1);
            r.queue('default', { waiting: 7, oldest_s: 1 });
          }),
        ),
      ])
      .execute();
    const summary = new LiveSummary({ db, counts: () => t.system.jobs.admin.counts(), now: () => now });
    const requests = (s: Awaited<ReturnType<LiveSummary['series']>>) =>
      Math.round(s.http.rps.reduce((n, rps) => n + rps * s.step_s, 0));
    const bucketAt = (s: Awaited<ReturnType<LiveSummary['series']>>, ms: number) => s.t.indexOf(ms / 1000);
    const near = (got: number | null | undefined, want: number) =>
      expect(Math.abs((got ?? 0) / want - 1)).toBeLessThan(0.02);

    const byMinute = await summary.series(3_600_000, STEP);
    const byTwo = await summary.series(3_600_000, 2 * STEP);
    const byHalf = await summary.series(900_000, 30_000);
    for (const s of [byMinute, byTwo, byHalf]) expect(requests(s)).toBe(160);
    // Two minutes in one bucket: their figures merged.
    const two = bucketAt(byTwo, pair);
    expect(two).toBeGreaterThanOrEqual(0);
    expect(byTwo.http.rps[two]).toBeCloseTo(160 / 120, 3);
    expect(byTwo.http.error_rate[two]).toBe(0.0625);
    near(byTwo.http.p50_ms[two], 10);
    near(byTwo.http.p90_ms[two], 100);
    near(byTwo.http.p99_ms[two], 1000);
    const queue = (s: Awaited<ReturnType<LiveSummary['series']>>) =>
      s.queues.find((q) => q.queue === 'default');
    expect(queue(byTwo)?.waiting[two]).toBe(7);
    expect(queue(byTwo)?.oldest_waiting_s[two]).toBe(2.5);
    // A minute alone, and the same rows in half minutes.
    const first = bucketAt(byMinute, pair);
    expect(byMinute.http.rps[first]).toBeCloseTo(100 / 60, 3);
    expect(byMinute.http.error_rate[first]).toBe(0.1);
    expect(byMinute.http.rps[first + 1]).toBeCloseTo(60 / 60, 3);
    const half = bucketAt(byHalf, pair);
    expect(byHalf.http.rps.slice(half, half + 4).map((v) => Math.round(v * 30))).toEqual([90, 10, 60, 0]);

    // A row that arrives late in a minute already merged is counted at the next call.
    await db
      .insertInto('telemetry_samples')
      .values(
        row(
          'api-3',
          pair + 20_000,
          interval((r) => r.http('GET', '/api/v1/campaigns', 200, 0.01)),
        ),
      )
      .execute();
    const again = await summary.series(3_600_000, 2 * STEP);
    expect(requests(again)).toBe(161);
    expect(again.http.rps[two]).toBeCloseTo(161 / 120, 3);
  });

  it('answers viewers on the API and refuses a bad window or step naming the field', async () => {
    const get = (query: string, headers: Record<string, string> = t.as('viewer')) =>
      t.app.inject({ method: 'GET', url: `/api/v1/observability/series${query}`, headers });
    const ok = await get('?window=15m&step_s=30');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ window_s: 900, step_s: 30 });
    expect(ok.json().t).toHaveLength(30);
    // Default: an hour in minutes.
    expect((await get('')).json()).toMatchObject({ window_s: 3600, step_s: 60 });
    const tooFine = await get('?window=1h&step_s=1');
    expect(tooFine.statusCode).toBe(400);
    expect(tooFine.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'step_s' } });
    const badStep = await get('?step_s=abc');
    expect(badStep.statusCode).toBe(400);
    expect(badStep.json().error.details).toMatchObject({ field: 'step_s' });
    const badWindow = await get('?window=2h');
    expect(badWindow.statusCode).toBe(400);
    expect(badWindow.json().error.details).toMatchObject({ field: 'window' });
    expect((await get('', {})).statusCode).toBe(401);
  });
});

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

/**
 * /metrics of the API: who may read it, both formats, HTTP timing by route template, job
 * outcomes and queue depth from a real worker, and the worker's own listener.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/telemetry/metrics-server.js';
import { makeJobsTestApp } from '../support/app.js';
import { embeddedEnabled } from '../support/backends.js';
import { until, silent } from '../jobs/helpers.js';
import { parseExposition, valueOf } from './exposition.js';

const TOKEN = 'metrics-token-0123456789abcdef';

describe.runIf(embeddedEnabled())('metrics endpoint', () => {
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  beforeAll(async () => {
    t = await makeJobsTestApp('sqlite', 'sqlite', { METRICS_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await t?.close();
  });

  const scrape = async (auth = `Bearer ${t.keys.admin}`, accept?: string) =>
    t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: auth, ...(accept ? { accept } : {}) },
    });

  it('needs an admin key or METRICS_TOKEN', async () => {
    const anon = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(anon.statusCode).toBe(401);
    expect((await scrape(`Bearer ${t.keys.viewer}`)).json().error.code).toBe('FORBIDDEN');
    expect((await scrape(`Bearer ${t.keys.editor}`)).statusCode).toBe(403);
    expect((await scrape('Bearer not-a-key-at-all-000000')).statusCode).toBe(401);
    expect((await scrape(`Bearer ${TOKEN}`)).statusCode).toBe(200);
    const admin = await scrape();
    expect(admin.statusCode).toBe(200);
    expect(admin.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('serves OpenMetrics when asked', async () => {
    const res = await scrape(undefined, 'application/openmetrics-text; version=1.0.0,text/plain;q=0.5');
    expect(res.headers['content-type']).toMatch(/^application\/openmetrics-text/);
    expect(res.body.trimEnd().endsWith('# EOF')).toBe(true);
    expect(res.body).toContain('# TYPE http_server_request_duration_seconds histogram');
    // A counter's family drops _total in OpenMetrics; its samples keep it.
    expect(res.body).toContain('# TYPE process_cpu_user_seconds counter');
    expect(res.body).toMatch(/^process_cpu_user_seconds_total \S+$/m);
    expect(res.body).not.toMatch(/\n\n/);
    // And the Prometheus text still names the family with _total afterwards.
    expect((await scrape()).body).toContain('# TYPE process_cpu_user_seconds_total counter');
  });

  it('times requests by route template and status, never by raw URL', async () => {
    const get = (url: string) => t.app.inject({ method: 'GET', url, headers: t.as('viewer') });
    expect((await get('/api/v1/campaigns/424242')).statusCode).toBe(404);
    expect((await get('/api/v1/campaigns/434343')).statusCode).toBe(404);
    expect((await get('/api/v1/campaigns')).statusCode).toBe(200);
    expect((await get('/no/such/route/55')).statusCode).toBe(404);
    const series = parseExposition((await scrape()).body);
    const count = (route: string, status: string) =>
      valueOf(series, 'http_server_request_duration_seconds_count', {
        method: 'GET',
        route,
        status_code: status,
      });
    expect(count('/api/v1/campaigns/:id', '404')).toBe(2);
    expect(count('/api/v1/campaigns', '200')).toBe(1);
    expect(count('unmatched', '404')).toBe(1);
    const routes = new Set(
      series.filter((s) => s.name.startsWith('http_server_request')).map((s) => s.labels.route),
    );
    for (const r of routes) expect(r).not.toMatch(/\d{2,}/);
    expect(valueOf(series, 'http_server_active_requests')).toBe(1); // the scrape itself
    // Runtime metrics are there.
    expect(valueOf(series, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('counts job outcomes and timings per queue and task, and reads depth when scraped', async () => {
    await t.system.jobs.enqueue('diagnostics.noop', {});
    await t.system.jobs.enqueue('diagnostics.fail', { mode: 'permanent' });
    await t.system.jobs.enqueue('diagnostics.noop', {}, { queue: 'low_priority', delayMs: 600_000 });
    let series = parseExposition((await scrape()).body);
    await until(
      async () => {
        series = parseExposition((await scrape()).body);
        return (
          valueOf(series, 'omnivibe_jobs_finished_total', { task: 'diagnostics.fail', outcome: 'failed' }) ===
            1 &&
          valueOf(series, 'omnivibe_jobs_finished_total', {
            task: 'diagnostics.noop',
            outcome: 'completed',
          }) === 1 &&
          // Settlements are committed a moment after the attempt is recorded.
          valueOf(series, 'omnivibe_queue_jobs', { queue: 'default', state: 'failed' }) === 1
        );
      },
      10_000,
      'both jobs finished',
    );
    expect(
      valueOf(series, 'omnivibe_job_run_seconds_count', { queue: 'default', task: 'diagnostics.noop' }),
    ).toBe(1);
    expect(valueOf(series, 'omnivibe_job_wait_seconds_count', { task: 'diagnostics.fail' })).toBe(1);
    expect(
      valueOf(series, 'omnivibe_jobs_enqueued_total', { queue: 'default', task: 'diagnostics.noop' }),
    ).toBe(1);
    expect(
      valueOf(series, 'omnivibe_jobs_enqueued_total', { queue: 'low_priority', task: 'diagnostics.noop' }),
    ).toBe(1);
    expect(valueOf(series, 'omnivibe_queue_jobs', { queue: 'low_priority', state: 'delayed' })).toBe(1);
    expect(valueOf(series, 'omnivibe_queue_jobs', { queue: 'default', state: 'failed' })).toBe(1);
    expect(valueOf(series, 'omnivibe_queue_oldest_waiting_seconds', { queue: 'default' })).toBe(0);
    expect(valueOf(series, 'omnivibe_worker_slots', { state: 'busy' })).toBe(0);
    expect(valueOf(series, 'omnivibe_worker_slots', { state: 'free' })).toBe(2);
    // The app's own statements were timed.
    expect(
      valueOf(series, 'omnivibe_db_query_duration_seconds_count', { dialect: 'sqlite', operation: 'select' }),
    ).toBeGreaterThan(0);
  });

  it('times cache reads per prefix and tier, as a histogram whose buckets add up', async () => {
    const client = await t.system.services.clients.create({ name: 'Cache Co' });
    const campaign = await t.system.services.campaigns.create({
      client_id: client.id,
      name: 'Cached',
      platform: 'tiktok',
    });
    const read = () =>
      t.app.inject({ method: 'GET', url: `/api/v1/campaigns/${campaign.id}`, headers: t.as('viewer') });
    const name = 'omnivibe_cache_request_duration_seconds';
    const before = parseExposition((await scrape()).body)
      .filter((s) => s.name === `${name}_count`)
      .reduce((n, s) => n + s.value, 0);
    for (let i = 0; i < 3; i++) expect((await read()).statusCode).toBe(200);
    const body = (await scrape()).body;
    expect(body).toContain(`# TYPE ${name} histogram`);
    const series = parseExposition(body);
    const counts = series.filter((s) => s.name === `${name}_count`);
    expect(counts.reduce((n, s) => n + s.value, 0) - before).toBeGreaterThanOrEqual(3);
    for (const count of counts) {
      expect(['l1', 'store']).toContain(count.labels.tier);
      const buckets = series.filter(
        (s) =>
          s.name === `${name}_bucket` &&
          s.labels.prefix === count.labels.prefix &&
          s.labels.tier === count.labels.tier,
      );
      for (let i = 1; i < buckets.length; i++)
        expect(buckets[i]?.value).toBeGreaterThanOrEqual(buckets[i - 1]?.value ?? 0);
      expect(buckets.at(-1)).toMatchObject({ labels: { le: '+Inf' }, value: count.value });
      expect(valueOf(series, `${name}_sum`, count.labels)).toBeGreaterThan(0);
    }
    // OpenMetrics carries it too.
    expect((await scrape(undefined, 'application/openmetrics-text')).body).toContain(
      `# TYPE ${name} histogram`,
    );
  });

  it('serves the same registry on a listener of its own, without a key', async () => {
    const metrics = t.system.telemetry?.metrics;
    if (!metrics) throw new Error('metrics are on by default');
    const server = await startMetricsServer(metrics, '127.0.0.1', 0, silent);
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('omnivibe_jobs_finished_total');
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

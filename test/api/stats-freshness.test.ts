/**
 * Campaign roll-ups stay current without an operator, on both databases: ingesting
 * metrics schedules one stats.aggregate run of the campaign per STATS_REFRESH_DELAY_MS
 * window, a worker runs it, and GET /campaigns/{id}/stats says how fresh it is
 * (computed_at, metrics_ingested_at, stale), through the cache.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { startWorker } from '../../src/main/worker.js';
import type { Worker } from '../../src/jobs/worker/worker.js';
import { QUEUE_NAMES } from '../../src/jobs/types.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WINDOW_MS = 400;

describe.each(dbBackends())('campaign stats kept current (%s)', (backend) => {
  let system: System;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let worker: Worker | undefined;
  let dir: string;
  let headers: Record<string, string>;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-stats-'));
    const db = await freshDatabaseConfig(backend);
    const config = loadConfig({
      DATABASE_URL: db.dialect === 'sqlite' ? 'sqlite::memory:' : db.url,
      JOBS_DB_FILE: path.join(dir, 'jobs.db'),
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      CACHE_MODE: 'memory',
      JOBS_POLL_MS: '20',
      RATE_LIMIT_WRITES_PER_MIN: '100000',
      STATS_REFRESH_DELAY_MS: String(WINDOW_MS),
    });
    system = await createSystem(config, createLogger(config));
    app = await buildApp(appDepsFrom(system, { logger: false }));
    headers = { authorization: `Bearer ${(await system.apiKeys.create('stats', 'editor')).key}` };
  });
  afterAll(async () => {
    await worker?.stop({ now: true });
    await app?.close();
    await system?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const r = await app.inject({ method, url: `/api/v1${url}`, headers, payload: payload as never });
    if (r.statusCode >= 300) throw new Error(`${method} ${url}: ${r.statusCode} ${r.body}`);
    return r.json();
  };
  const ingest = (contentId: number, day: string, views: number) =>
    call('POST', `/contents/${contentId}/metrics`, {
      metrics: [{ recorded_at: `${day}T12:00:00Z`, views, likes: 1, comments: 0, shares: 0 }],
    });
  const aggregateRuns = async (campaignId: number) =>
    (await system.jobs.admin.list({ name: 'stats.aggregate', limit: 100 })).items.filter(
      (j) => (j.payload as { campaign_id?: number }).campaign_id === campaignId,
    ).length;

  it('schedules one roll-up per window on ingest and reports staleness until it ran', async () => {
    const client = await call('POST', '/clients', { name: 'stats' });
    const campaign = await call('POST', '/campaigns', {
      client_id: client.id,
      name: 's',
      platform: 'youtube',
    });
    const content = await call('POST', `/campaigns/${campaign.id}/contents`, { title: 't' });
    const stats = () => call('GET', `/campaigns/${campaign.id}/stats`);

    expect(await stats()).toMatchObject({
      days: [],
      computed_at: null,
      metrics_ingested_at: null,
      stale: false,
    });
    // A burst of ingests within one window: one run (idempotency key of the window).
    await ingest(content.id, '2026-03-01', 100);
    await ingest(content.id, '2026-03-01', 150);
    await ingest(content.id, '2026-03-02', 200);
    const pending = await stats();
    expect(pending).toMatchObject({ days: [], computed_at: null, stale: true });
    expect(pending.metrics_ingested_at).toEqual(expect.any(String));
    const runs = await aggregateRuns(campaign.id);
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(2); // the burst may straddle a window's end

    worker = startWorker(system, system.jobs, {
      queues: [...QUEUE_NAMES],
      concurrency: 2,
      prefetch: 0,
      maxTasksPerChild: 100,
      maxMemoryPerChild: 512,
      shutdownTimeout: 1000,
      metricsPort: 0,
    });
    const deadline = Date.now() + 15_000;
    let fresh = await stats();
    while (fresh.stale && Date.now() < deadline) {
      await sleep(50);
      fresh = await stats();
    }
    expect(fresh.stale).toBe(false);
    expect(fresh.days.map((d: { day: string; views: number }) => [d.day, d.views])).toEqual([
      ['2026-03-01', 150],
      ['2026-03-02', 200],
    ]);
    expect(new Date(fresh.computed_at).getTime()).toBeGreaterThanOrEqual(
      new Date(fresh.metrics_ingested_at).getTime(),
    );

    // A later ingest: the cached answer follows at once (stale), then the next window's run.
    await ingest(content.id, '2026-03-03', 300);
    const again = await stats();
    expect(again).toMatchObject({ stale: true, computed_at: fresh.computed_at });
    expect(again.days).toHaveLength(2);
    const deadline2 = Date.now() + 15_000;
    let last = again;
    while (last.stale && Date.now() < deadline2) {
      await sleep(50);
      last = await stats();
    }
    expect(last.stale).toBe(false);
    expect(last.days).toHaveLength(3);
    expect(last.computed_at > fresh.computed_at).toBe(true);

    // A run over every campaign stamps them all.
    const all = await system.jobs.enqueue('stats.aggregate', {});
    const deadline3 = Date.now() + 15_000;
    let everyone = last;
    while (everyone.computed_at === last.computed_at && Date.now() < deadline3) {
      await sleep(50);
      everyone = await stats();
    }
    expect((await system.jobs.admin.get(all.id))?.state).toBe('completed');
    expect(everyone).toMatchObject({ stale: false, days: last.days });
    expect(everyone.computed_at > last.computed_at).toBe(true);
  }, 60_000);
});

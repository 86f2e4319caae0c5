/**
 * The cardinality rule (src/telemetry/metrics.ts): no label holds an id. Every documented route
 * is called and every registered task run, twice with different ids; the second pass must add no
 * series, and no label value may look like an id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeJobsTestApp } from '../support/app.js';
import { embeddedEnabled } from '../support/backends.js';
import { openApiRoutes } from '../support/openapi-routes.js';
import { until } from '../jobs/helpers.js';
import { parseExposition } from './exposition.js';

/** A valid payload for each task, pointing at rows that do not exist (`id`). */
const PAYLOADS: Record<string, (id: number) => unknown> = {
  'stats.aggregate': (id) => ({ campaign_id: id }),
  'audio.batch': (id) => ({ content_ids: [id] }),
  'audio.generate': (id) => ({ generation_id: id }),
  'video.render': (id) => ({ render_id: id, quality: 'low' }),
  'maintenance.cleanup': () => ({}),
  'diagnostics.noop': () => ({}),
  'diagnostics.noop_sandboxed': () => ({}),
  'diagnostics.sleep': () => ({ ms: 1 }),
  'diagnostics.sleep_high': () => ({ ms: 1 }),
  'diagnostics.sleep_low': () => ({ ms: 1 }),
  'diagnostics.sleep_timeout': () => ({ ms: 1 }),
  'diagnostics.sleep_timeout_sandboxed': () => ({ ms: 1 }),
  'diagnostics.cpu': () => ({ ms: 1 }),
  'diagnostics.fail': () => ({ mode: 'permanent' }),
};

describe.runIf(embeddedEnabled())('metric cardinality', () => {
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  beforeAll(async () => {
    t = await makeJobsTestApp('sqlite', 'sqlite');
  });
  afterAll(async () => {
    await t?.close();
  });

  const series = async () => {
    const res = await t.app.inject({ method: 'GET', url: '/metrics', headers: t.as('admin') });
    return parseExposition(res.body).filter(
      (s) => !s.name.startsWith('process_') && !s.name.startsWith('nodejs_'),
    );
  };

  const pass = async (id: number) => {
    const routes = await openApiRoutes(t.app);
    for (const r of routes) {
      await t.app.inject({
        method: r.method,
        url: r.samplePath.replaceAll('999999', String(id)),
        headers: t.as('admin'),
        ...(r.body ? { payload: {} } : {}),
      });
    }
    await t.app.inject({ method: 'GET', url: `/no/such/page/${id}`, headers: t.as('admin') });
    const ids: string[] = [];
    for (const name of t.system.jobs.registry.names()) {
      const payload = PAYLOADS[name];
      if (!payload) throw new Error(`task ${name} has no payload in this test: add one`);
      ids.push((await t.system.jobs.enqueue(name, payload(id), { attempts: 1 })).id);
    }
    await until(
      async () => {
        const jobs = await Promise.all(ids.map((i) => t.system.jobs.admin.get(i)));
        return jobs.every((j) => j && ['completed', 'failed', 'dead', 'cancelled'].includes(j.state));
      },
      25_000,
      'every task finished',
    );
  };

  it('a second pass with other ids adds no series, and no label holds an id', async () => {
    await series(); // the scrape's own series
    await pass(999_999);
    const first = await series();
    await pass(888_888);
    const second = await series();
    const key = (s: { name: string; labels: Record<string, string> }) =>
      `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    const added = second.map(key).filter((k) => !new Set(first.map(key)).has(k));
    expect(added).toEqual([]);
    for (const s of second)
      for (const [label, value] of Object.entries(s.labels)) {
        if (label === 'le' || label === 'status_code') continue;
        expect(value, `${s.name} ${label}`).not.toMatch(/\d{3,}/);
      }
    const tasks = new Set(second.filter((s) => s.labels.task).map((s) => s.labels.task));
    expect([...tasks].sort()).toEqual(t.system.jobs.registry.names().sort());
    // The bound: routes × methods × statuses stay small whatever the traffic.
    expect(second.length).toBeLessThan(5000);
  }, 90_000);
});

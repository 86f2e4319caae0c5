/**
 * The /admin overview page in a real browser (Debian's Chromium through playwright-core): real
 * requests, jobs and a narration priced by a fake OpenAI (its wire format) feed the live figures;
 * the page draws every chart with uPlot from this server only (no request to another origin, no
 * CSP violation), with that data, and updates from the event stream as more work happens.
 * Runs where /usr/bin/chromium exists (CI installs it).
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Series } from '../../src/telemetry/live-series.js';
import { until } from '../jobs/helpers.js';
import { FakeVendors } from '../media/fake-vendors.js';
import { seedContent } from '../media/media-fixtures.js';
import { makeJobsTestApp } from '../support/app.js';
import { embeddedEnabled } from '../support/backends.js';
import { CHROMIUM, CHROMIUM_FLAGS } from '../support/chromium.js';

const CHARTS = ['rps', 'latency', 'errors', 'throughput', 'failures', 'depth', 'oldest', 'cache', 'cost'];

const sum = (values: (number | null)[]) => values.reduce<number>((n, v) => n + (v ?? 0), 0);

describe.runIf(fs.existsSync(CHROMIUM) && embeddedEnabled())('overview page in Chromium', () => {
  const vendors = new FakeVendors();
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    await vendors.start();
    t = await makeJobsTestApp('sqlite', 'sqlite', {
      TELEMETRY_PUBLISH_MS: '200',
      OPENAI_BASE_URL: `${vendors.url}/v1`,
      OPENAI_API_KEY: 'sk-test',
      NARRATION_VERIFIER: 'acoustic',
    });
    t.system.telemetry?.publisher.begin('all');
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await vendors.close();
  });

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${t.keys.admin}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const enqueue = async (name: string, payload: unknown, queue?: string) => {
    const res = await api('POST', '/tasks', { name, payload, attempts: 1, ...(queue ? { queue } : {}) });
    expect(res.status).toBe(202);
    return ((await res.json()) as { task_id: string }).task_id;
  };
  const finished = (ids: string[]) =>
    until(
      async () =>
        (await Promise.all(ids.map((id) => t.system.jobs.admin.get(id)))).every((j) =>
          ['completed', 'failed', 'dead'].includes(j?.state ?? ''),
        ),
      30_000,
      'tasks finished',
    );

  /** Requests (some cached reads, some 404s), jobs that succeed and fail, and tasks left waiting. */
  async function load(campaignId: number): Promise<void> {
    for (let i = 0; i < 20; i++) expect((await api('GET', `/campaigns/${campaignId}`)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await api('GET', '/campaigns/987654')).status).toBe(404);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await enqueue('diagnostics.noop', {}));
    ids.push(await enqueue('diagnostics.fail', { mode: 'permanent' }));
    await finished(ids);
  }

  // Browser-side expressions are strings: this project's TypeScript has no DOM types.
  const seriesOf = async (page: Page) => (await page.evaluate('window.overview.series')) as Series;
  const updates = async (page: Page) => Number(await page.evaluate('document.body.dataset.updates || 0'));
  // Polled from here: a predicate evaluated in the page would need 'unsafe-eval', which its CSP refuses.
  const waitUpdates = (page: Page, more: number, timeout: number) =>
    until(async () => (await updates(page)) > more, timeout, `more than ${more} draws`);
  /** Pixels painted on a chart's canvas (-1: no canvas). */
  const painted = async (page: Page, chart: string) =>
    Number(
      await page.evaluate(`(() => {
        const canvas = document.querySelector('#chart-${chart} canvas');
        if (!canvas) return -1;
        const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n;
      })()`),
    );

  it('draws every chart from real figures, from this server only, and updates live', async () => {
    const client = (await (await api('POST', '/clients', { name: 'Overview Co' })).json()) as { id: number };
    const campaign = (await (
      await api('POST', '/campaigns', { client_id: client.id, name: 'Overview', platform: 'tiktok' })
    ).json()) as { id: number };
    await load(campaign.id);
    // A narration through the API, priced by the (fake) vendor.
    const { contentId } = await seedContent(t.system.database.db, ['봄 신메뉴를 소개합니다.']);
    const narration = await api('POST', `/contents/${contentId}/audio`, {
      provider: 'openai',
      max_attempts: 1,
    });
    expect(narration.status).toBe(202);
    await finished([((await narration.json()) as { task_id: string }).task_id]);
    // Tasks left waiting in a paused queue: depth and the oldest wait.
    expect((await api('POST', '/queues/low_priority/pause', {})).status).toBe(200);
    for (let i = 0; i < 3; i++) await enqueue('diagnostics.noop', {}, 'low_priority');
    await new Promise((r) => setTimeout(r, 600)); // two publish intervals

    const ctx = await browser.newContext({ httpCredentials: { username: 'ops', password: t.keys.viewer } });
    const page = await ctx.newPage();
    const foreign: string[] = [];
    const violations: string[] = [];
    page.on('request', (r) => void (r.url().startsWith(base) || foreign.push(r.url())));
    page.on(
      'console',
      (m) => void (/Content.Security.Policy|Refused/i.test(m.text()) && violations.push(m.text())),
    );
    page.on('pageerror', (e) => violations.push(e.message));
    const res = await page.goto(`${base}/admin/overview?window=15m&step_s=5`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/script-src 'self'/);
    expect(await page.title()).toBe('Overview · OmniVibe Pro');
    await waitUpdates(page, 0, 15_000);

    // Every chart is drawn: a uPlot canvas with something painted on it.
    for (const id of CHARTS) expect(await painted(page, id), `chart ${id}`).toBeGreaterThan(0);
    const s = await seriesOf(page);
    expect(s.step_s).toBe(5);
    expect(sum(s.http.rps) * 5).toBeGreaterThanOrEqual(25);
    expect(s.http.p99_ms.some((v) => v !== null && v > 0)).toBe(true);
    expect(sum(s.http.error_rate)).toBe(0); // 404s are not errors; no 5xx happened
    const queue = (name: string) => s.queues.find((q) => q.queue === name);
    expect(sum(queue('default')?.throughput_per_s ?? []) * 5).toBeGreaterThanOrEqual(5);
    // At least the one failure (the newest bucket's rate is over the seconds it has had so far).
    expect(sum(queue('default')?.failures_per_s ?? []) * 5).toBeGreaterThanOrEqual(0.99);
    expect(Math.max(...(queue('low_priority')?.waiting ?? []).map((v) => v ?? 0))).toBe(3);
    expect(Math.max(...(queue('low_priority')?.oldest_waiting_s ?? []).map((v) => v ?? 0))).toBeGreaterThan(
      0,
    );
    expect(s.cache.hit_rate.some((v) => v !== null && v > 0)).toBe(true);
    const openai = s.ai_cost.find((p) => p.provider === 'openai');
    expect(sum(openai?.usd ?? [])).toBeGreaterThan(0);
    expect(await page.locator('#chart-cost .now').innerText()).toContain('openai');

    // More work, a bucket later: the page takes it from the event stream without a reload.
    const lastT = s.t.at(-1) as number;
    const drawn = await updates(page);
    await new Promise((r) => setTimeout(r, 5_500));
    await load(campaign.id);
    await waitUpdates(page, drawn + 1, 20_000);
    await until(
      async () => {
        const now = await seriesOf(page);
        return now.t.some((bucket, i) => bucket > lastT && (now.http.rps[i] ?? 0) > 0);
      },
      20_000,
      'new requests charted in a newer bucket',
    );
    expect(page.url()).toBe(`${base}/admin/overview?window=15m&step_s=5`);

    expect(foreign).toEqual([]);
    expect(violations).toEqual([]);
    await ctx.close();
  }, 120_000);

  it('refuses a bad step naming the field, and asks for credentials', async () => {
    const ctx = await browser.newContext({ httpCredentials: { username: 'ops', password: t.keys.viewer } });
    const bad = await ctx.request.get(`${base}/admin/overview?step_s=1`);
    expect(bad.status()).toBe(400);
    expect(((await bad.json()) as { error: { details: { field: string } } }).error.details.field).toBe(
      'step_s',
    );
    await ctx.close();
    const anon = await browser.newContext();
    const res = await anon.request.get(`${base}/admin/overview`);
    expect(res.status()).toBe(401);
    expect(res.headers()['www-authenticate']).toMatch(/^Basic realm=/);
    await anon.close();
  });
});

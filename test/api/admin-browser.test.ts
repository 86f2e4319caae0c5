/**
 * The operator dashboard in a real browser (Debian's Chromium through
 * playwright-core): the Basic sign-in, the pages, the buttons (a real form POST
 * must pass the same-origin check), and a form on another site refused.
 * Runs where /usr/bin/chromium exists (CI installs it).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../support/app.js';
import { embeddedEnabled } from '../support/backends.js';
import { CHROMIUM, CHROMIUM_FLAGS } from '../support/chromium.js';

describe.runIf(fs.existsSync(CHROMIUM) && embeddedEnabled())('operator dashboard in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let base: string;
  let evil: http.Server;
  let evilBase: string;

  beforeAll(async () => {
    t = await makeTestApp('sqlite', { JOBS_CLEANUP_INTERVAL_S: '0' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    // Another site (another origin: another port) whose page posts a form to the dashboard.
    evil = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<form method="post" action="${base}/admin/queues/default/pause"></form>
        <script>document.forms[0].submit()</script>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    evilBase = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => evil?.close(r));
    await t?.close();
  });

  const signedIn = (role: 'admin' | 'editor' | 'viewer') =>
    browser.newContext({ httpCredentials: { username: 'ops', password: t.keys[role] } });
  const paused = async (queue: string) =>
    (await t.system.jobs?.admin.counts())?.find((c) => c.queue === queue)?.paused;

  it('asks for credentials, then shows the queues', async () => {
    // Without credentials: the challenge that makes a browser ask (headless Chromium gives up instead).
    const anon = await browser.newContext();
    await expect((await anon.newPage()).goto(`${base}/admin`)).rejects.toThrow(
      /ERR_INVALID_AUTH_CREDENTIALS/,
    );
    const res = await anon.request.get(`${base}/admin`);
    expect(res.status()).toBe(401);
    expect(res.headers()['www-authenticate']).toMatch(/^Basic realm=/);
    await anon.close();

    const ctx = await signedIn('viewer');
    const page = await ctx.newPage();
    expect((await page.goto(`${base}/admin?refresh=0`))?.status()).toBe(200);
    expect(await page.title()).toBe('Jobs · OmniVibe Pro');
    expect(await page.locator('table').first().innerText()).toContain('low_priority');
    expect(await page.locator('button').count()).toBe(0);
    await ctx.close();
  });

  it('cancels a task and pauses a queue with its buttons', async () => {
    const id = (await t.system.jobs?.enqueue('diagnostics.noop', { tag: 'browser' }, { delayMs: 600_000 }))
      ?.id;
    const ctx = await signedIn('admin');
    const page = await ctx.newPage();
    await page.goto(`${base}/admin/tasks/${id}`);
    await Promise.all([
      page.waitForURL(`${base}/admin/tasks/${id}`),
      page.click('button:has-text("cancel")'),
    ]);
    expect(await page.locator('h1').innerText()).toContain('cancelled');
    expect((await t.system.jobs?.admin.get(id as string))?.state).toBe('cancelled');

    await page.goto(`${base}/admin?refresh=0`);
    await Promise.all([
      page.waitForURL(`${base}/admin`),
      page.locator('form[action="/admin/queues/low_priority/pause"] button').click(),
    ]);
    expect(await paused('low_priority')).toBe(true);
    await page.locator('form[action="/admin/queues/low_priority/resume"] button').click();
    await page.waitForURL(`${base}/admin`);
    expect(await paused('low_priority')).toBe(false);
    await ctx.close();
  });

  it("refuses another site's form, though the browser sends the saved credentials", async () => {
    const ctx = await signedIn('admin');
    const page = await ctx.newPage();
    const refused = page.waitForResponse((r) => r.url() === `${base}/admin/queues/default/pause`);
    await page.goto(evilBase);
    expect((await refused).status()).toBe(403);
    expect(await paused('default')).toBe(false);
    await ctx.close();
  });
});

/**
 * The operator dashboard (/admin) through the whole app, on each queue backend
 * with a real worker: HTTP Basic sign-in with the browser challenge, pages for
 * viewers, buttons by role, same-origin POSTs only, filters, and escaping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/db/types.js';
import { queueBackends, until } from '../jobs/helpers.js';
import { makeJobsTestApp } from '../support/app.js';

describe.each(queueBackends())('operator dashboard: %s queue', (backend) => {
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  beforeAll(async () => {
    t = await makeJobsTestApp('sqlite', backend);
  });
  afterAll(async () => {
    await t.close();
  });

  const basic = (key: string, user = 'ops') => `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}`;
  const page = (url: string, role?: Role) =>
    t.app.inject({ method: 'GET', url, headers: role ? { authorization: basic(t.keys[role]) } : {} });
  const press = (
    url: string,
    role: Role,
    headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' },
  ) =>
    t.app.inject({
      method: 'POST',
      url,
      headers: {
        authorization: basic(t.keys[role]),
        'content-type': 'application/x-www-form-urlencoded',
        ...headers,
      },
      payload: '',
    });
  const enqueue = async (name: string, payload: unknown, opts: Record<string, unknown> = {}) =>
    (await t.system.jobs?.enqueue(name, payload, opts))?.id as string;
  const state = async (id: string) => (await t.system.jobs?.admin.get(id))?.state;

  it('asks a browser to sign in, and takes an API key as the Basic password', async () => {
    const anon = await page('/admin');
    expect(anon.statusCode).toBe(401);
    expect(anon.headers['www-authenticate']).toMatch(/^Basic realm="OmniVibe Pro operators"/);
    const wrong = await t.app.inject({
      method: 'GET',
      url: '/admin',
      headers: { authorization: basic('nope') },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic/);
    const ok = await page('/admin', 'viewer');
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(ok.headers['content-security-policy']).toContain("default-src 'none'");
    expect(ok.headers['www-authenticate']).toBeUndefined();
    expect(ok.body).toContain(`${backend} backend`);
    for (const q of ['high_priority', 'default', 'low_priority']) expect(ok.body).toContain(`>${q}</a>`);
    // A Bearer key works too; the JSON API never takes Basic, and never challenges.
    expect((await t.app.inject({ method: 'GET', url: '/admin', headers: t.as('viewer') })).statusCode).toBe(
      200,
    );
    const api = await t.app.inject({
      method: 'GET',
      url: '/api/v1/queues',
      headers: { authorization: basic(t.keys.admin) },
    });
    expect(api.statusCode).toBe(401);
    expect(api.headers['www-authenticate']).toBeUndefined();
  });

  it('shows live workers and the latest tasks, filtered by state and queue', async () => {
    await until(
      async () => (await t.system.jobs?.admin.listWorkers())?.length === 1,
      10_000,
      'worker record',
    );
    const done = await enqueue('diagnostics.noop', { tag: 'dash-done' });
    await until(async () => (await state(done)) === 'completed', 10_000, 'noop completed');
    const late = await enqueue('diagnostics.noop', { tag: 'dash-late' }, { delayMs: 600_000 });
    const all = await page('/admin', 'viewer');
    expect(all.body).toContain(t.worker.id);
    expect(all.body).toContain(`/admin/tasks/${done}`);
    expect(all.body).toContain(`/admin/tasks/${late}`);
    const delayed = await page('/admin?state=delayed&queue=default&refresh=0', 'viewer');
    expect(delayed.body).toContain(`/admin/tasks/${late}`);
    expect(delayed.body).not.toContain(`/admin/tasks/${done}"`);
    expect(delayed.body).not.toContain('http-equiv="refresh"');
    expect(all.body).toContain('http-equiv="refresh"');
    expect((await page('/admin?state=bogus', 'viewer')).statusCode).toBe(400);
    await t.system.jobs?.admin.cancel(late);
  });

  it('escapes what tasks carry', async () => {
    const id = await enqueue('diagnostics.noop', { tag: '<script>alert(1)</script>', '"><img src=x>': 1 });
    await until(async () => (await state(id)) === 'completed', 10_000, 'completed');
    // Once its attempt's timing row is written (batched every 100 ms), the page shows it.
    let body = '';
    await until(
      async () =>
        /<td class="s-succeeded">succeeded<\/td>/.test(
          (body = (await page(`/admin/tasks/${id}`, 'viewer')).body),
        ),
      10_000,
      'the attempt row',
    );
    expect(body).not.toContain('<script>');
    expect(body).not.toContain('<img');
    expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect((await page('/admin/tasks/x-404', 'viewer')).statusCode).toBe(404);
  });

  it('offers buttons by role, and acts on same-origin POSTs only', async () => {
    const id = await enqueue('diagnostics.noop', { tag: 'to-cancel' }, { delayMs: 600_000 });
    expect((await page(`/admin/tasks/${id}`, 'viewer')).body).not.toContain('<form');
    // Only admins may enqueue diagnostics.*, so only they may act on one: editors get no button and a 403.
    expect((await page(`/admin/tasks/${id}`, 'editor')).body).not.toContain('<form');
    expect((await press(`/admin/tasks/${id}/cancel`, 'editor')).statusCode).toBe(403);
    expect((await page(`/admin/tasks/${id}`, 'admin')).body).toContain(`action="/admin/tasks/${id}/cancel"`);
    expect((await press(`/admin/tasks/${id}/cancel`, 'viewer')).statusCode).toBe(403);
    // A form on another site would carry the browser's saved credentials: refused.
    expect(
      (await press(`/admin/tasks/${id}/cancel`, 'admin', { 'sec-fetch-site': 'cross-site' })).statusCode,
    ).toBe(403);
    expect(
      (await press(`/admin/tasks/${id}/cancel`, 'admin', { origin: 'https://evil.example' })).statusCode,
    ).toBe(403);
    expect(await state(id)).toBe('delayed');
    const cancel = await press(`/admin/tasks/${id}/cancel`, 'admin');
    expect(cancel.statusCode).toBe(303);
    expect(cancel.headers.location).toBe(`/admin/tasks/${id}`);
    expect(await state(id)).toBe('cancelled');
    const retry = await press(`/admin/tasks/${id}/retry`, 'admin');
    expect(retry.statusCode).toBe(303);
    // The retried task (BullMQ re-enqueues a task cancelled before it started under a new id).
    const again = decodeURIComponent(String(retry.headers.location).replace('/admin/tasks/', ''));
    if (backend === 'sqlite') expect(again).toBe(id);
    await until(async () => (await state(again)) === 'completed', 10_000, 'retried task completed');
  });

  it('lets admins pause and resume a queue', async () => {
    expect((await page('/admin', 'editor')).body).not.toContain('/admin/queues/low_priority/pause');
    expect((await press('/admin/queues/low_priority/pause', 'editor')).statusCode).toBe(403);
    const pause = await press('/admin/queues/low_priority/pause', 'admin');
    expect(pause.statusCode).toBe(303);
    expect(pause.headers.location).toBe('/admin');
    const paused = await page('/admin', 'admin');
    expect(paused.body).toContain('low_priority</a> <b>paused</b>');
    expect(paused.body).toContain('action="/admin/queues/low_priority/resume"');
    expect((await press('/admin/queues/low_priority/resume', 'admin')).statusCode).toBe(303);
    expect((await t.system.jobs?.admin.counts())?.find((c) => c.queue === 'low_priority')?.paused).toBe(
      false,
    );
    expect((await press('/admin/queues/nope/pause', 'admin')).statusCode).toBe(400);
  });
});

/**
 * The task API through the whole app (inject), on each queue backend, with a real
 * worker in the same process: enqueue, get with timings, list, SSE progress,
 * retry, cancel, queues, workers, campaign stats from stats.aggregate, roles, Bull Board.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeJobsTestApp } from '../support/app.js';
import { dbBackends } from '../support/backends.js';
import { queueBackends, until } from './helpers.js';

describe.each(queueBackends())('task API: %s queue', (backend) => {
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  beforeAll(async () => {
    t = await makeJobsTestApp(
      dbBackends().includes('postgres') && backend === 'bullmq' ? 'postgres' : 'sqlite',
      backend,
    );
  });
  afterAll(async () => {
    await t.close();
  });

  const call = async (
    method: 'GET' | 'POST',
    url: string,
    role: 'admin' | 'editor' | 'viewer' = 'admin',
    body?: unknown,
  ) => {
    const res = await t.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: t.as(role),
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return { status: res.statusCode, body: res.json() as Record<string, unknown> };
  };
  const code = (r: { body: Record<string, unknown> }) =>
    (r.body.error as { code?: string } | undefined)?.code;
  const waitTask = async (id: string, state: string) =>
    until(
      async () => (await call('GET', `/tasks/${id}`, 'viewer')).body.state === state,
      15_000,
      `task ${id} ${state}`,
    );

  it('enqueues a diagnostic task (admin only), runs it, and reports its timings', async () => {
    expect((await call('POST', '/tasks', 'editor', { name: 'diagnostics.noop' })).status).toBe(403);
    const r = await call('POST', '/tasks', 'admin', { name: 'diagnostics.noop', payload: { tag: 'api' } });
    expect(r.status).toBe(202);
    const id = r.body.task_id as string;
    await waitTask(id, 'completed');
    await until(
      async () => ((await call('GET', `/tasks/${id}`, 'viewer')).body.runs as unknown[]).length === 1,
      5000,
      'task_runs row',
    );
    const got = await call('GET', `/tasks/${id}`, 'viewer');
    expect(got.body).toMatchObject({
      id,
      name: 'diagnostics.noop',
      queue: 'default',
      state: 'completed',
      attempts_made: 1,
    });
    const [run] = got.body.runs as Array<Record<string, unknown>>;
    expect(run).toMatchObject({ attempt: 1, status: 'succeeded' });
    expect(run?.wait_ms).toBeGreaterThanOrEqual(0);
    expect(run?.run_ms).toBeGreaterThanOrEqual(0);
  });

  it('refuses bad input with 4xx codes', async () => {
    expect(code(await call('POST', '/tasks', 'admin', { name: 'nope' }))).toBe('TASK_UNKNOWN');
    const bad = await call('POST', '/tasks', 'admin', { name: 'diagnostics.sleep', payload: { ms: -1 } });
    expect(bad.status).toBe(400);
    expect(code(bad)).toBe('VALIDATION_FAILED');
    expect(code(await call('GET', '/tasks/d-424242', 'viewer'))).toBe('TASK_NOT_FOUND');
    expect(code(await call('GET', '/tasks?state=sleeping', 'viewer'))).toBe('VALIDATION_FAILED');
    expect((await call('GET', '/tasks?cursor=zzz', 'viewer')).status).toBe(400);
  });

  it('streams progress over SSE until the task ends', async () => {
    const r = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.sleep',
      payload: { ms: 600, steps: 3 },
    });
    const id = r.body.task_id as string;
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/v1/tasks/${id}/events`,
      headers: t.as('viewer'),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/event-stream/);
    const events = res.body
      .split('\n\n')
      .filter(Boolean)
      .map((chunk) => ({
        event: /event: (\w+)/.exec(chunk)?.[1],
        data: JSON.parse(/data: (.*)/.exec(chunk)?.[1] ?? 'null') as Record<string, unknown>,
      }));
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data.progress);
    expect(progress).toEqual(expect.arrayContaining([100]));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { id, state: 'completed' } });
  });

  it('retries (editor) and cancels tasks; viewers cannot', async () => {
    const r = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.fail',
      payload: { mode: 'permanent' },
    });
    const id = r.body.task_id as string;
    await waitTask(id, 'failed');
    expect((await call('POST', `/tasks/${id}/retry`, 'viewer')).status).toBe(403);
    expect((await call('POST', `/tasks/${id}/retry`, 'editor')).status).toBe(200);
    await waitTask(id, 'failed');
    const late = await call('POST', '/tasks', 'admin', { name: 'diagnostics.noop', delay_ms: 60_000 });
    const lateId = late.body.task_id as string;
    expect((await call('GET', `/tasks/${lateId}`, 'viewer')).body.state).toBe('delayed');
    const c = await call('POST', `/tasks/${lateId}/cancel`, 'editor');
    expect(c.body.state).toBe('cancelled');
    expect(code(await call('POST', `/tasks/${lateId}/cancel`, 'editor'))).toBe('TASK_STATE_CONFLICT');
    const list = await call('GET', '/tasks?state=cancelled', 'viewer');
    expect((list.body.items as Array<{ id: string }>).map((i) => i.id)).toContain(lateId);
  });

  it('lists queues, pauses and resumes them (admin), and lists workers', async () => {
    const q = await call('GET', '/queues', 'viewer');
    expect(q.body.backend).toBe(backend);
    expect((q.body.items as Array<{ name: string }>).map((i) => i.name)).toEqual([
      'high_priority',
      'default',
      'low_priority',
    ]);
    expect((await call('POST', '/queues/default/pause', 'editor')).status).toBe(403);
    expect(code(await call('POST', '/queues/nope/pause', 'admin'))).toBe('VALIDATION_FAILED');
    expect((await call('POST', '/queues/low_priority/pause', 'admin')).body).toEqual({
      name: 'low_priority',
      paused: true,
    });
    const paused = await call('GET', '/queues', 'viewer');
    expect(
      (paused.body.items as Array<{ name: string; paused: boolean }>).find((i) => i.name === 'low_priority')
        ?.paused,
    ).toBe(true);
    await call('POST', '/queues/low_priority/resume', 'admin');
    await until(
      async () => ((await call('GET', '/workers', 'viewer')).body.items as unknown[]).length > 0,
      5000,
      'a worker record',
    );
    const w = await call('GET', '/workers', 'viewer');
    expect((w.body.items as Array<Record<string, unknown>>)[0]).toMatchObject({
      pid: process.pid,
      concurrency: 2,
    });
  });

  it('rolls performance metrics up per content, campaign and day (stats.aggregate)', async () => {
    const post = async (url: string, body: unknown) =>
      (await call('POST', url, 'editor', body)).body as { id: number };
    const client = await post('/clients', { name: 'Stats Co' });
    const campaign = await post('/campaigns', { client_id: client.id, name: 'Spring', platform: 'youtube' });
    const a = await post(`/campaigns/${campaign.id}/contents`, { title: 'A' });
    const b = await post(`/campaigns/${campaign.id}/contents`, { title: 'B' });
    const m = (at: string, views: number, likes: number) => ({
      recorded_at: at,
      views,
      likes,
      comments: 0,
      shares: 0,
      ctr: 0.02,
    });
    expect(
      (
        await call('POST', `/contents/${a.id}/metrics`, 'editor', {
          metrics: [
            m('2026-03-01T08:00:00Z', 100, 5),
            m('2026-03-01T20:00:00Z', 300, 9),
            m('2026-03-02T10:00:00Z', 500, 20),
          ],
        })
      ).status,
    ).toBe(201);
    await call('POST', `/contents/${b.id}/metrics`, 'editor', {
      metrics: [m('2026-03-01T12:00:00Z', 50, 1)],
    });
    const before = await call('GET', `/campaigns/${campaign.id}/stats`, 'viewer');
    expect(before.body).toMatchObject({ campaign_id: campaign.id, days: [] });
    const job = await call('POST', '/tasks', 'admin', {
      name: 'stats.aggregate',
      payload: { campaign_id: campaign.id },
    });
    await waitTask(job.body.task_id as string, 'completed');
    const s = await call('GET', `/campaigns/${campaign.id}/stats`, 'viewer');
    const days = s.body.days as Array<Record<string, number | string>>;
    expect(days.map((d) => d.day)).toEqual(['2026-03-01', '2026-03-02']);
    // Each content's last snapshot of the day, summed per campaign.
    expect(days[0]).toMatchObject({ contents: 2, views: 350, likes: 10 });
    expect(days[1]).toMatchObject({ contents: 1, views: 500, likes: 20 });
    const contents = s.body.contents as Array<Record<string, number | string>>;
    expect(contents.find((c) => c.content_id === a.id && c.day === '2026-03-01')).toMatchObject({
      samples: 2,
      views: 300,
    });
    const ranged = await call('GET', `/campaigns/${campaign.id}/stats?from=2026-03-02`, 'viewer');
    expect((ranged.body.days as unknown[]).length).toBe(1);
    expect(code(await call('GET', '/campaigns/999999/stats', 'viewer'))).toBe('CAMPAIGN_NOT_FOUND');
    // Idempotent: running it again gives the same roll-up.
    const again = await call('POST', '/tasks', 'admin', { name: 'stats.aggregate', payload: {} });
    await waitTask(again.body.task_id as string, 'completed');
    expect((await call('GET', `/campaigns/${campaign.id}/stats`, 'viewer')).body.days).toEqual(days);
  });

  it.runIf(backend === 'bullmq')('mounts Bull Board at /admin/queues for admins only', async () => {
    const viewer = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: t.as('viewer') });
    expect(viewer.statusCode).toBe(403);
    const anon = await t.app.inject({ method: 'GET', url: '/admin/queues' });
    expect(anon.statusCode).toBe(401);
    const admin = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: t.as('admin') });
    expect(admin.statusCode).toBe(200);
    const api = await t.app.inject({
      method: 'GET',
      url: '/admin/queues/api/queues',
      headers: t.as('admin'),
    });
    expect(api.statusCode).toBe(200);
    expect(JSON.stringify(api.json())).toContain('high_priority');
  });
});

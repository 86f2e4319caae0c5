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

  it('a task that reads as finished shows its attempt in the same response (no wait for a batch of rows)', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await call('POST', '/tasks', 'admin', {
        name: 'diagnostics.noop',
        payload: { tag: `lag${i}` },
      });
      const id = r.body.task_id as string;
      let seen: Record<string, unknown> | undefined;
      await until(
        async () => {
          const got = await call('GET', `/tasks/${id}`, 'viewer');
          if (got.body.state !== 'completed') return false;
          seen = got.body;
          return true;
        },
        15_000,
        `task ${id} completed`,
      );
      expect((seen?.runs as Array<Record<string, unknown>>).map((run) => [run.attempt, run.status])).toEqual([
        [1, 'succeeded'],
      ]);
    }
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

  it('retries and cancels tasks with the role that may enqueue them; viewers cannot', async () => {
    const r = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.fail',
      payload: { mode: 'permanent' },
    });
    const id = r.body.task_id as string;
    await waitTask(id, 'failed');
    expect((await call('POST', `/tasks/${id}/retry`, 'viewer')).status).toBe(403);
    // Only admins may enqueue diagnostics.*, so only they may act on one (issue 11).
    const editorRetry = await call('POST', `/tasks/${id}/retry`, 'editor');
    expect(editorRetry.status).toBe(403);
    expect(editorRetry.body.error).toMatchObject({ code: 'FORBIDDEN', details: { required: 'admin' } });
    expect((await call('GET', `/tasks/${id}`, 'viewer')).body.state).toBe('failed');
    expect((await call('POST', `/tasks/${id}/retry`, 'admin')).status).toBe(200);
    await waitTask(id, 'failed');
    const late = await call('POST', '/tasks', 'admin', { name: 'diagnostics.noop', delay_ms: 60_000 });
    const lateId = late.body.task_id as string;
    expect((await call('GET', `/tasks/${lateId}`, 'viewer')).body.state).toBe('delayed');
    expect(code(await call('POST', `/tasks/${lateId}/cancel`, 'editor'))).toBe('FORBIDDEN');
    expect((await call('GET', `/tasks/${lateId}`, 'viewer')).body.state).toBe('delayed');
    const c = await call('POST', `/tasks/${lateId}/cancel`, 'admin');
    expect(c.body.state).toBe('cancelled');
    expect(code(await call('POST', `/tasks/${lateId}/cancel`, 'admin'))).toBe('TASK_STATE_CONFLICT');
    const list = await call('GET', '/tasks?state=cancelled', 'viewer');
    expect((list.body.items as Array<{ id: string }>).map((i) => i.id)).toContain(lateId);
    // Editors enqueue narration (POST /contents/{id}/audio), so they may cancel it.
    const narration = await t.system.jobs.enqueue(
      'audio.generate',
      { generation_id: 999_999 },
      { delayMs: 60_000 },
    );
    expect((await call('POST', `/tasks/${narration.id}/cancel`, 'editor')).body.state).toBe('cancelled');
  });

  it('answers 409 to an idempotency key reused for another task name, enqueueing nothing', async () => {
    const key = `idem-${backend}-${Math.random().toString(36).slice(2)}`;
    const first = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.noop',
      delay_ms: 60_000,
      idempotency_key: key,
    });
    expect(first.status).toBe(202);
    expect(first.body.created).toBe(true);
    const same = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.noop',
      delay_ms: 60_000,
      idempotency_key: key,
    });
    expect(same.body).toMatchObject({ task_id: first.body.task_id, created: false });
    // Another name, in the same queue and in another one.
    for (const name of ['diagnostics.sleep', 'diagnostics.sleep_high']) {
      const other = await call('POST', '/tasks', 'admin', { name, payload: { ms: 1 }, idempotency_key: key });
      expect(other.status, name).toBe(409);
      expect(other.body.error).toMatchObject({
        code: 'IDEMPOTENCY_KEY_CONFLICT',
        details: { field: 'idempotency_key', task_id: first.body.task_id, task_name: 'diagnostics.noop' },
      });
    }
    // In a bulk request the conflict refuses the whole request: the other item is not enqueued.
    const fresh = `${key}-fresh`;
    const bulk = await call('POST', '/tasks/bulk', 'admin', {
      tasks: [
        { name: 'diagnostics.noop', delay_ms: 60_000, idempotency_key: fresh },
        { name: 'diagnostics.sleep_low', payload: { ms: 1 }, idempotency_key: key },
      ],
    });
    expect(bulk.status).toBe(409);
    expect(bulk.body.error).toMatchObject({
      code: 'IDEMPOTENCY_KEY_CONFLICT',
      details: { field: 'tasks.1.idempotency_key', index: 1 },
    });
    const after = await call('POST', '/tasks', 'admin', {
      name: 'diagnostics.noop',
      delay_ms: 60_000,
      idempotency_key: fresh,
    });
    expect(after.body.created).toBe(true);
    const task = await call('GET', `/tasks/${first.body.task_id as string}`, 'viewer');
    expect(task.body).toMatchObject({ name: 'diagnostics.noop', state: 'delayed' });
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

/**
 * POST /api/v1/tasks/bulk through the whole app (inject), on each queue backend, with a worker in
 * the same process: tasks enqueued in request order and run, idempotency keys per item, the
 * per-request limit, a bad item rejecting the whole request with nothing enqueued, and one bulk
 * request counting as one write for the rate limiter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BULK_TASKS } from '../../src/api/routes/tasks.routes.js';
import { makeJobsTestApp } from '../support/app.js';
import { dbBackends, redisUrl } from '../support/backends.js';
import { queueBackends, until } from './helpers.js';

type App = Awaited<ReturnType<typeof makeJobsTestApp>>;
type Body = Record<string, unknown>;
interface Enqueued {
  task_id: string;
  created: boolean;
  queue: string;
  state_url: string;
}

const dbFor = (backend: string) =>
  dbBackends().includes('postgres') && backend === 'bullmq' ? 'postgres' : 'sqlite';

function caller(t: () => App) {
  return async (method: 'GET' | 'POST', url: string, role: 'admin' | 'editor' = 'admin', body?: unknown) => {
    const res = await t().app.inject({
      method,
      url: `/api/v1${url}`,
      headers: t().as(role),
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return { status: res.statusCode, body: res.json() as Body };
  };
}

const errorOf = (r: { body: Body }) =>
  r.body.error as { code: string; message: string; details?: Record<string, unknown> };

/** Tasks that wait an hour: they stay `delayed`, so the queue's counts show exactly what was enqueued. */
const parked = (key: string) => ({ name: 'diagnostics.noop', delay_ms: 3_600_000, idempotency_key: key });

describe.each(queueBackends())('bulk enqueue: %s queue', (backend) => {
  let t: App;
  beforeAll(async () => {
    t = await makeJobsTestApp(dbFor(backend), backend);
  });
  afterAll(async () => {
    await t.close();
  });
  const call = caller(() => t);
  const delayed = async () => {
    const q = await call('GET', '/queues');
    return (q.body.items as Array<{ counts: Record<string, number> }>).reduce(
      (n, i) => n + (i.counts.delayed ?? 0),
      0,
    );
  };

  it('enqueues every item in request order, runs them, and honours idempotency keys per item', async () => {
    expect(
      (await call('POST', '/tasks/bulk', 'editor', { tasks: [{ name: 'diagnostics.noop' }] })).status,
    ).toBe(403);
    const key = `bulk-ok-${backend}`;
    const r = await call('POST', '/tasks/bulk', 'admin', {
      tasks: [
        { name: 'diagnostics.noop', payload: {} },
        { name: 'diagnostics.sleep_high', payload: { ms: 10 } },
        { name: 'diagnostics.noop', queue: 'low_priority', priority: 80, idempotency_key: key },
      ],
    });
    expect(r.status).toBe(202);
    const items = r.body.items as Enqueued[];
    expect(r.body.created).toBe(3);
    expect(items.map((i) => [i.queue, i.created])).toEqual([
      ['default', true],
      ['high_priority', true],
      ['low_priority', true],
    ]);
    expect(new Set(items.map((i) => i.task_id)).size).toBe(3);
    for (const [n, item] of items.entries()) {
      expect(item.state_url).toBe(`/api/v1/tasks/${item.task_id}`);
      await until(
        async () => (await call('GET', `/tasks/${item.task_id}`)).body.state === 'completed',
        15_000,
        `item ${n} completed`,
      );
    }
    const low = await call('GET', `/tasks/${items[2]?.task_id}`);
    expect(low.body).toMatchObject({ name: 'diagnostics.noop', priority: 80, idempotency_key: key });

    // The keyed item again, with a new one: the existing task comes back, only the new one is created.
    const again = await call('POST', '/tasks/bulk', 'admin', {
      tasks: [
        { name: 'diagnostics.noop', queue: 'low_priority', idempotency_key: key },
        { name: 'diagnostics.noop' },
      ],
    });
    expect(again.status).toBe(202);
    const [same, fresh] = again.body.items as Enqueued[];
    expect(same).toMatchObject({ task_id: items[2]?.task_id, created: false });
    expect(fresh?.created).toBe(true);
    expect(again.body.created).toBe(1);
  });

  it(`takes up to ${MAX_BULK_TASKS} tasks per request and refuses more with nothing enqueued`, async () => {
    const before = await delayed();
    const full = await call('POST', '/tasks/bulk', 'admin', {
      tasks: Array.from({ length: MAX_BULK_TASKS }, (_, i) => parked(`limit-${backend}-${i}`)),
    });
    expect(full.status).toBe(202);
    expect(full.body.created).toBe(MAX_BULK_TASKS);
    expect(new Set((full.body.items as Enqueued[]).map((i) => i.task_id)).size).toBe(MAX_BULK_TASKS);
    expect(await delayed()).toBe(before + MAX_BULK_TASKS);

    const over = await call('POST', '/tasks/bulk', 'admin', {
      tasks: Array.from({ length: MAX_BULK_TASKS + 1 }, (_, i) => parked(`over-${backend}-${i}`)),
    });
    expect(over.status).toBe(400);
    expect(errorOf(over)).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'tasks' } });
    expect(errorOf(over).message).toContain(String(MAX_BULK_TASKS));
    expect(await delayed()).toBe(before + MAX_BULK_TASKS);

    const empty = await call('POST', '/tasks/bulk', 'admin', { tasks: [] });
    expect(errorOf(empty)).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'tasks' } });
  });

  it.each([
    {
      what: 'an invalid payload',
      bad: () => ({ name: 'diagnostics.sleep', payload: { ms: -1 } }),
      code: 'VALIDATION_FAILED',
      field: 'tasks.2.payload',
    },
    {
      what: 'a task that cannot be enqueued here',
      bad: () => ({ name: 'video.render', payload: {} }),
      code: 'TASK_UNKNOWN',
      field: 'tasks.2.name',
    },
    {
      what: 'a field out of range',
      bad: () => ({ name: 'diagnostics.noop', priority: 0 }),
      code: 'VALIDATION_FAILED',
      field: 'tasks.2.priority',
    },
    {
      what: 'an idempotency key given twice',
      // Item 2 repeats item 0's key.
      bad: (good: Body[]) => good[0] as Body,
      code: 'VALIDATION_FAILED',
      field: 'tasks.2.idempotency_key',
    },
  ])('rejects the whole request for $what, naming the item, with nothing enqueued', async (c) => {
    const before = await delayed();
    const good: Body[] = [0, 1, 3].map((i) => parked(`bad-${backend}-${c.field}-${i}`));
    const r = await call('POST', '/tasks/bulk', 'admin', { tasks: [good[0], good[1], c.bad(good), good[2]] });
    expect(r.status).toBe(400);
    const err = errorOf(r);
    expect(err.code).toBe(c.code);
    expect(err.details?.field).toBe(c.field);
    expect(err.message).toMatch(new RegExp(`^(body\\.)?${c.field.replace(/\./g, '\\.')}`));
    expect(await delayed()).toBe(before);
    // None of the good items exists: enqueueing them now creates every one.
    const retry = await call('POST', '/tasks/bulk', 'admin', { tasks: good });
    expect(retry.body.created).toBe(3);
    expect(await delayed()).toBe(before + 3);
  });
});

describe.each(queueBackends())('bulk enqueue and the write rate limit: %s queue', (backend) => {
  let t: App;
  beforeAll(async () => {
    t = await makeJobsTestApp(dbFor(backend), backend, {
      RATE_LIMIT_WRITES_PER_MIN: '3',
      // Distributed mode keeps the counters in Redis by key id, which every test database starts at 1:
      // a Redis database of this test's own keeps other test files' writes out of its count.
      ...(backend === 'bullmq' ? { REDIS_URL: `${redisUrl() as string}/11` } : {}),
    });
  });
  afterAll(async () => {
    await t.close();
  });
  const call = caller(() => t);

  it('counts a bulk request of many tasks as one write, against the same count as every other write', async () => {
    const bulk = await call('POST', '/tasks/bulk', 'admin', {
      tasks: Array.from({ length: 200 }, () => ({ name: 'diagnostics.noop' })),
    });
    expect(bulk.status).toBe(202);
    expect(bulk.body.created).toBe(200);
    expect((await call('POST', '/tasks', 'admin', { name: 'diagnostics.noop' })).status).toBe(202);
    expect((await call('POST', '/tasks', 'admin', { name: 'diagnostics.noop' })).status).toBe(202);
    const fourth = await call('POST', '/tasks/bulk', 'admin', { tasks: [{ name: 'diagnostics.noop' }] });
    expect(fourth.status).toBe(429);
    expect(errorOf(fourth).code).toBe('RATE_LIMITED');
  });
});

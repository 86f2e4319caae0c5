/**
 * Live task event streams over a real socket: bounded per key and in total (429), one reader per
 * task however many streams watch it, a maximum lifetime with resumption by Last-Event-ID, and
 * slots given back when clients go.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../support/app.js';
import { until } from '../jobs/helpers.js';

interface Stream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The raw text received so far. */
  text: () => string;
  ended: Promise<void>;
  close(): void;
}

describe('task event streams', () => {
  let t: TestApp;
  let base: string;
  beforeAll(async () => {
    t = await makeTestApp('sqlite', {
      EVENT_STREAMS_PER_KEY: '3',
      EVENT_STREAMS_MAX: '5',
      EVENT_STREAM_LIFETIME_S: '2',
      EVENT_STREAM_POLL_MS: '100',
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => t.close());

  const delayedTask = async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tasks',
      headers: t.as('admin'),
      payload: { name: 'diagnostics.noop', delay_ms: 3_600_000 },
    });
    return r.json<{ task_id: string }>().task_id;
  };

  function open(id: string, key: string, headers: Record<string, string> = {}): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        `${base}/api/v1/tasks/${id}/events`,
        { headers: { authorization: `Bearer ${key}`, ...headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          const ended = new Promise<void>((done) => res.on('close', done));
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: () => text,
            ended,
            close: () => req.destroy(),
          });
        },
      );
      req.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
      });
    });
  }
  const firstEvent = (s: Stream) =>
    until(async () => s.text().includes('event: progress'), 5000, 'first event');

  it('limits open streams per key and in total with a 429, and gives slots back on close', async () => {
    const id = await delayedTask();
    const mine = await Promise.all([1, 2, 3].map(() => open(id, t.keys.viewer)));
    await Promise.all(mine.map(firstEvent));
    const refused = await open(id, t.keys.viewer);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
    await refused.ended;
    expect(JSON.parse(refused.text())).toMatchObject({ error: { code: 'RATE_LIMITED' } });

    // Another key has its own three, but the process holds at most five.
    const others = await Promise.all([1, 2].map(() => open(id, t.keys.editor)));
    expect(others.map((s) => s.status)).toEqual([200, 200]);
    const overTotal = await open(id, t.keys.admin);
    expect(overTotal.status).toBe(429);
    await overTotal.ended;

    for (const s of [...mine, ...others]) s.close();
    await Promise.all([...mine, ...others].map((s) => s.ended));
    await until(
      async () => {
        const again = await open(id, t.keys.viewer);
        again.close();
        return again.status === 200;
      },
      5000,
      'a slot given back',
    );
  });

  it('serves every stream of a task from one reader', async () => {
    const id = await delayedTask();
    const queue = t.system.jobs!.admin;
    const get = queue.get.bind(queue);
    let reads = 0;
    queue.get = async (taskId: string) => {
      if (taskId === id) reads += 1;
      return get(taskId);
    };
    try {
      const streams = [
        await open(id, t.keys.viewer),
        await open(id, t.keys.viewer),
        await open(id, t.keys.editor),
      ];
      streams.push(await open(id, t.keys.editor), await open(id, t.keys.admin));
      expect(streams.map((s) => s.status)).toEqual([200, 200, 200, 200, 200]);
      await Promise.all(streams.map(firstEvent));
      reads = 0;
      await new Promise((r) => setTimeout(r, 1000));
      // One reader polling every 100 ms reads about 10 times a second; one per stream would read 50.
      expect(reads).toBeGreaterThan(3);
      expect(reads).toBeLessThan(20);
      await t.app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: t.as('admin') });
      await Promise.all(streams.map((s) => s.ended));
      for (const s of streams) expect(s.text()).toContain('event: end');
    } finally {
      queue.get = get;
    }
  });

  it('ends a stream at its lifetime; a reconnect with Last-Event-ID resumes without repeating', async () => {
    const id = await delayedTask();
    const started = Date.now();
    const first = await open(id, t.keys.viewer);
    await first.ended;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(first.text()).toMatch(/^retry: \d+/);
    const lastId = /id: (\S+)/.exec(first.text())?.[1];
    expect(lastId).toBe('0.delayed.0');

    const resumed = await open(id, t.keys.viewer, { 'last-event-id': lastId as string });
    await new Promise((r) => setTimeout(r, 400));
    expect(resumed.text()).not.toContain('event: progress');
    await t.app.inject({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, headers: t.as('admin') });
    await resumed.ended;
    expect(resumed.text()).toContain('id: 0.cancelled.0');
    expect(resumed.text()).toContain('event: end');
  });
});

/**
 * What a client may send (issue 12, "Input"): each reproducer of the report on each database,
 * with the invariant that a refused request answers 400/415 in the error shape and writes nothing.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends } from '../support/backends.js';
import { makeJobsTestApp } from '../support/app.js';
import { until } from '../jobs/helpers.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

describe.each(dbBackends())('strict input on %s', (backend) => {
  let t: Awaited<ReturnType<typeof makeJobsTestApp>>;
  let clientId: number;
  let campaignId: number;
  let contentId: number;
  beforeAll(async () => {
    t = await makeJobsTestApp(backend, 'sqlite');
    clientId = (await json('POST', '/clients', { name: 'Acme' })).body.id as number;
    campaignId = (
      await json('POST', '/campaigns', { client_id: clientId, name: 'Winter', platform: 'youtube' })
    ).body.id as number;
    contentId = (await json('POST', `/campaigns/${campaignId}/contents`, { title: 'First snow' })).body
      .id as number;
  });
  afterAll(async () => t.close());

  /** A request with a raw body (so malformed JSON can be sent as is). */
  async function raw(method: Method, url: string, body?: string, contentType = 'application/json') {
    const res = await t.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: { ...t.as('admin'), ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { payload: body } : {}),
    });
    return {
      status: res.statusCode,
      body: (res.body ? res.json() : {}) as Record<string, unknown>,
    };
  }
  const json = (method: Method, url: string, body?: unknown) =>
    raw(method, url, body === undefined ? undefined : JSON.stringify(body));
  const code = (r: { body: Record<string, unknown> }) =>
    (r.body.error as { code?: string } | undefined)?.code;
  const counts = async () => {
    const db = t.system.database.db;
    const one = async (table: 'clients' | 'campaigns' | 'contents' | 'performance_metrics' | 'api_keys') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    return {
      clients: await one('clients'),
      campaigns: await one('campaigns'),
      contents: await one('contents'),
      metrics: await one('performance_metrics'),
      keys: await one('api_keys'),
      tasks: (await t.system.jobs!.admin.list({ limit: 100 })).items.length,
    };
  };
  /** Sends each request, expects `status` and the error shape, and that no row was added or removed. */
  async function refused(status: number, ...requests: (() => ReturnType<typeof raw>)[]) {
    for (const send of requests) {
      const before = await counts();
      const r = await send();
      expect({ status: r.status, code: typeof code(r) }).toEqual({ status, code: 'string' });
      expect(await counts()).toEqual(before);
    }
  }

  it('refuses non-finite numbers in paths, queries and bodies, and stores none', async () => {
    await refused(
      400,
      () => json('GET', '/campaigns/-Infinity'),
      () => json('GET', '/contents/1e309'),
      () => json('GET', '/clients?limit=Infinity'),
      () => json('GET', '/clients?limit=NaN'),
      () => json('POST', '/tasks', { name: 'diagnostics.noop', priority: 'Infinity' }),
      () => json('POST', '/tasks', { name: 'diagnostics.noop', delay_ms: 'Infinity' }),
      () => raw('POST', '/tasks', '{"name":"diagnostics.noop","delay_ms":1e309}'),
      () => raw('POST', '/tasks', '{"name":"diagnostics.noop","payload":{"n":-1e309}}'),
      () =>
        json('POST', `/contents/${contentId}/metrics`, {
          metrics: [
            { recorded_at: '2026-01-01T00:00:00Z', views: 'Infinity', likes: 0, comments: 0, shares: 0 },
          ],
        }),
      () =>
        raw(
          'POST',
          `/contents/${contentId}/metrics`,
          '{"metrics":[{"recorded_at":"2026-01-01T00:00:00Z","views":1e309,"likes":0,"comments":0,"shares":0}]}',
        ),
      () =>
        json('POST', '/campaigns', {
          client_id: clientId,
          name: 'Inf',
          platform: 'youtube',
          target_duration_s: 'Infinity',
        }),
    );
    expect((await json('GET', `/contents/${contentId}/metrics`)).status).toBe(200);
    expect((await json('GET', '/tasks')).status).toBe(200);
  });

  it('takes body fields as sent: no type conversion', async () => {
    await refused(
      400,
      () => json('POST', '/clients', { name: 12345 }),
      () => json('POST', '/campaigns', { client_id: true, name: 'x', platform: 'youtube' }),
      () => json('POST', '/campaigns', { client_id: String(clientId), name: 'x', platform: 'youtube' }),
      () => json('POST', `/campaigns/${campaignId}/contents`, { title: 'x', keywords: 'solo' }),
      () => json('POST', `/campaigns/${campaignId}/contents`, { title: 'x', keywords: [1] }),
      () => json('PATCH', `/clients/${clientId}`, { name: null }),
    );
  });

  it('matches path and query integers with a strict decimal pattern', async () => {
    const victim = (await json('POST', '/clients', { name: 'Victim' })).body.id as number;
    const spellings = [
      `${victim}.0`,
      `+${victim}`,
      `%20${victim}`,
      `${victim}%20`,
      `${victim}e0`,
      `0x${victim.toString(16)}`,
      `0${victim}`,
    ];
    await refused(
      400,
      ...spellings.map((s) => () => json('DELETE', `/clients/${s}`)),
      ...spellings.map((s) => () => json('GET', `/campaigns?client_id=${s}`)),
      () => json('GET', '/clients?limit=1.0'),
      () => json('GET', '/clients?limit=%2B5'),
    );
    expect((await json('GET', `/clients/${victim}`)).status).toBe(200);
    const key = (await json('POST', '/keys', { name: 'ten', role: 'viewer' })).body.record as { id: number };
    await refused(400, () => raw('POST', `/keys/0x${key.id.toString(16)}/revoke`));
    expect(
      ((await json('GET', '/keys')).body.items as { id: number; revoked_at: string | null }[]).find(
        (k) => k.id === key.id,
      )?.revoked_at,
    ).toBeNull();
    expect((await json('GET', '/clients?limit=2')).status).toBe(200);
    expect((await json('DELETE', `/clients/${victim}`)).status).toBe(204);
  });

  it('refuses leap seconds on every date-time field with a 400', async () => {
    const leap = '2016-12-31T23:59:60Z';
    await refused(
      400,
      () => json('GET', `/campaigns?created_from=${leap}`),
      () => json('GET', `/campaigns?created_to=${leap}`),
      () => json('GET', `/contents/${contentId}/metrics?from=${leap}`),
      () => json('GET', `/contents/${contentId}/metrics?to=${leap}`),
      () => json('POST', `/campaigns/${campaignId}/contents`, { title: 'x', publish_at: leap }),
      () => json('POST', `/campaigns/${campaignId}/contents`, { title: 'x', published_at: leap }),
      () => json('PATCH', `/contents/${contentId}`, { publish_at: leap }),
      () =>
        json('POST', `/contents/${contentId}/metrics`, {
          metrics: [{ recorded_at: leap, views: 1, likes: 0, comments: 0, shares: 0 }],
        }),
      // Valid RFC 3339, but outside the years 1–9999 once in UTC.
      () => json('GET', `/campaigns?created_to=9999-12-31T23:59:59-23:00`),
    );
    expect((await json('GET', `/campaigns?created_from=2016-12-31T23:59:59Z`)).status).toBe(200);
  });

  it('limits JSON nesting depth with a 400', async () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    await refused(
      400,
      () => raw('POST', '/tasks', `{"name":"diagnostics.noop","payload":{"a":${deep(50_000)}}}`),
      () => raw('POST', '/tasks', `{"name":"diagnostics.noop","payload":{"a":${deep(64)}}}`),
    );
    const ok = await raw('POST', '/tasks', `{"name":"diagnostics.noop","payload":{"a":${deep(30)}}}`);
    expect(ok.status).toBe(202);
    // Prototype keys stay refused, as Fastify's own parser refused them; a plain "constructor" key is data.
    await refused(
      400,
      () => raw('POST', '/tasks', '{"name":"diagnostics.noop","payload":{"__proto__":{"x":1}}}'),
      () => raw('POST', '/tasks', '{"name":"diagnostics.noop","payload":{"constructor":{"prototype":{}}}}'),
    );
    const data = await raw('POST', '/tasks', '{"name":"diagnostics.noop","payload":{"constructor":{"a":1}}}');
    expect(data.status).toBe(202);
  });

  it('refuses ill-formed Unicode and names that hide or reorder characters', async () => {
    await refused(
      400,
      () => raw('POST', '/clients', '{"name":"Acme\\ud800"}'),
      () => raw('POST', '/clients', '{"name":"ok","industry":"\\udc00x"}'),
      () => raw('POST', '/tasks', '{"name":"diagnostics.noop","payload":{"\\ud800":1}}'),
      () => json('POST', '/clients', { name: 'Acme\u202Egnp.exe' }),
      () => json('POST', '/clients', { name: 'Ac\u200Bme' }),
      () => json('POST', '/clients', { name: '\u2067Acme\u2069' }),
      () => json('POST', '/clients', { name: '\u3164' }),
      () => json('POST', '/keys', { name: 'admin\u200D', role: 'viewer' }),
      () => json('PATCH', `/campaigns/${campaignId}`, { name: 'Winter\u061C' }),
    );
    const korean = await json('POST', '/clients', { name: '한국 클라이언트 🎬' });
    expect(korean.status).toBe(201);
    expect((await json('GET', `/clients/${korean.body.id as number}`)).body.name).toBe('한국 클라이언트 🎬');
  });

  it('bounds metric counters, and rolls up huge legacy counters without overflow', async () => {
    const metric = (views: number) => ({
      metrics: [{ recorded_at: '2026-02-01T00:00:00Z', views, likes: 0, comments: 0, shares: 0 }],
    });
    await refused(
      400,
      () => json('POST', `/contents/${contentId}/metrics`, metric(Number.MAX_SAFE_INTEGER)),
      () => json('POST', `/contents/${contentId}/metrics`, metric(1_000_000_000_001)),
    );
    expect((await json('POST', `/contents/${contentId}/metrics`, metric(1_000_000_000_000))).status).toBe(
      201,
    );

    // Rows written before the bound (up to 2^62 each): three of them overflow a 64-bit sum.
    const camp = (
      await json('POST', '/campaigns', { client_id: clientId, name: 'Huge', platform: 'youtube' })
    ).body.id as number;
    const db = t.system.database.db;
    for (let i = 0; i < 3; i++) {
      const c = (await json('POST', `/campaigns/${camp}/contents`, { title: `h${i}` })).body.id as number;
      const now = new Date().toISOString();
      await sql`insert into performance_metrics
        (content_id, recorded_at, views, likes, comments, shares, watch_time_s, ctr, engagement_rate, performance_score, created_at, updated_at)
        values (${c}, ${'2026-02-02T10:00:00.000Z'}, ${sql.raw('4611686018427387904')}, 1, 0, 0, 0, 0, 0, 0, ${now}, ${now})`.execute(
        db,
      );
    }
    const task = await json('POST', '/tasks', { name: 'stats.aggregate', payload: { campaign_id: camp } });
    expect(task.status).toBe(202);
    const id = task.body.task_id as string;
    await until(
      async () =>
        ['completed', 'failed', 'dead'].includes((await json('GET', `/tasks/${id}`)).body.state as string),
      15_000,
      'stats.aggregate to finish',
    );
    expect((await json('GET', `/tasks/${id}`)).body).toMatchObject({ state: 'completed', attempts_made: 1 });
    const stats = await json('GET', `/campaigns/${camp}/stats`);
    expect(stats.body.days).toEqual([
      expect.objectContaining({ day: '2026-02-02', contents: 3, views: Number.MAX_SAFE_INTEGER, likes: 3 }),
    ]);
  });

  it('answers bad percent-encoding in a path with the API error shape', async () => {
    const r = await raw('GET', '/clients/%E0%A4%A');
    expect(r.status).toBe(400);
    expect(code(r)).toBe('VALIDATION_FAILED');
    expect(code(await raw('GET', '/contents/%ED%A0%80'))).toBe('VALIDATION_FAILED');
  });

  it('accepts an empty JSON body on actions, and answers 415 to text/plain', async () => {
    const key = (await json('POST', '/keys', { name: 'to revoke', role: 'viewer' })).body.record as {
      id: number;
    };
    expect((await raw('POST', `/keys/${key.id}/revoke`, '')).status).toBe(200);
    const task = await json('POST', '/tasks', { name: 'diagnostics.noop', delay_ms: 600_000 });
    const id = task.body.task_id as string;
    const cancelled = await raw('POST', `/tasks/${id}/cancel`, '');
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.state).toBe('cancelled');
    const retried = await raw('POST', `/tasks/${id}/retry`, '');
    expect(retried.status).toBe(200);
    await json('POST', `/tasks/${id}/cancel`);
    expect((await raw('POST', '/cache/flush', '')).status).toBe(200);
    // A route that needs a body still says so.
    expect(code(await raw('POST', '/clients', ''))).toBe('VALIDATION_FAILED');
    await refused(
      415,
      () => raw('POST', '/clients', '{"name":"plain"}', 'text/plain'),
      () => raw('POST', `/keys/${key.id}/revoke`, 'x', 'text/plain'),
    );
  });
});

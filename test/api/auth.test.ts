import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends } from '../support/backends.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { openApiRoutes, type RouteInfo } from '../support/openapi-routes.js';

type Required = 'public' | 'viewer' | 'editor' | 'admin';
const RANK: Record<Required, number> = { public: 0, viewer: 1, editor: 2, admin: 3 };

/**
 * The access policy, stated independently of the code: reads need viewer, writes need
 * editor, and these need admin. Every route in the OpenAPI document is checked against it.
 */
const ADMIN_ROUTES: RegExp[] = [
  /^(GET|POST|PUT|PATCH|DELETE) \/api\/v1\/keys/,
  /^(GET|POST|DELETE) \/api\/v1\/cache\//,
  /^POST \/api\/v1\/tasks(\/bulk)?$/,
  /^POST \/api\/v1\/queues\/\{name\}\/(pause|resume)$/,
  /^POST \/api\/v1\/alerts\/test$/,
];
function expectedRole(r: RouteInfo): Required {
  const sig = `${r.method} ${r.path}`;
  if (ADMIN_ROUTES.some((re) => re.test(sig))) return 'admin';
  return r.method === 'GET' ? 'viewer' : 'editor';
}

describe.each(dbBackends())('auth on %s', (backend) => {
  let t: TestApp;
  let routes: RouteInfo[];
  beforeAll(async () => {
    t = await makeTestApp(backend);
    routes = (await openApiRoutes(t.app)).filter((r) => r.path.startsWith('/api/v1/'));
  });
  afterAll(async () => t.close());

  it('documents for every route the role the policy requires', () => {
    expect(routes.length).toBeGreaterThan(15);
    for (const r of routes)
      expect(`${r.method} ${r.path} ${r.requiredRole}`).toBe(`${r.method} ${r.path} ${expectedRole(r)}`);
  });

  it('enforces the matrix: every route × no key, viewer, editor, admin', async () => {
    const failures: string[] = [];
    for (const r of routes) {
      const need = expectedRole(r);
      for (const who of ['none', 'viewer', 'editor', 'admin'] as const) {
        const res = await t.app.inject({
          method: r.method,
          url: r.samplePath,
          headers: who === 'none' ? {} : t.as(who),
          ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { payload: {} }),
        });
        const expected = who === 'none' ? 401 : RANK[who] < RANK[need] ? 403 : 'allowed';
        const ok =
          expected === 'allowed'
            ? res.statusCode !== 401 && res.statusCode !== 403 && res.statusCode < 500
            : res.statusCode === expected;
        if (!ok)
          failures.push(`${r.method} ${r.samplePath} as ${who}: got ${res.statusCode}, expected ${expected}`);
        if (res.statusCode >= 400) {
          const body = res.json() as { error?: { code?: string } };
          if (typeof body.error?.code !== 'string')
            failures.push(`${r.method} ${r.samplePath} as ${who}: no error shape`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('rejects malformed, unknown and revoked keys with 401, and accepts a key right after creation', async () => {
    const url = '/api/v1/campaigns';
    for (const authorization of [
      'Bearer',
      'Bearer ',
      'Basic abc',
      'Bearer ov_nope_nope',
      `Bearer ${'x'.repeat(600)}`,
    ]) {
      const res = await t.app.inject({ url, headers: { authorization } });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHENTICATED');
    }
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/keys',
      headers: t.as('admin'),
      payload: { name: 'temp', role: 'viewer' },
    });
    expect(created.statusCode).toBe(201);
    const { key, record } = created.json() as { key: string; record: { id: number; prefix: string } };
    expect(key.startsWith(record.prefix)).toBe(true);
    expect(JSON.stringify(created.json().record)).not.toContain('hash');
    expect((await t.app.inject({ url, headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(200);
    const revoked = await t.app.inject({
      method: 'POST',
      url: `/api/v1/keys/${record.id}/revoke`,
      headers: t.as('admin'),
    });
    expect(revoked.json().revoked_at).toEqual(expect.any(String));
    // Revocation on the instance that revoked is immediate (its verification cache is cleared).
    expect((await t.app.inject({ url, headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(401);
    const listed = await t.app.inject({ url: '/api/v1/keys', headers: t.as('admin') });
    expect((listed.json().items as { id: number }[]).some((k) => k.id === record.id)).toBe(true);
    expect(
      (
        await t.app.inject({ method: 'POST', url: '/api/v1/keys/999999/revoke', headers: t.as('admin') })
      ).json().error.code,
    ).toBe('API_KEY_NOT_FOUND');
  });

  it('stores only a hash and a visible prefix of each key', async () => {
    const rows = await t.system.database.db.selectFrom('api_keys').selectAll().execute();
    for (const row of rows) {
      expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.values(t.keys)).not.toContain(row.key_hash);
    }
  });
});

describe.each(dbBackends())('write rate limit on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp(backend, { RATE_LIMIT_WRITES_PER_MIN: '3' });
  });
  afterAll(async () => t.close());

  it('answers 429 with Retry-After past the limit, per key, and never limits reads', async () => {
    const post = (role: 'editor' | 'admin') =>
      t.app.inject({ method: 'POST', url: '/api/v1/clients', headers: t.as(role), payload: { name: 'r' } });
    for (let i = 0; i < 3; i++) expect((await post('editor')).statusCode).toBe(201);
    const limited = await post('editor');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post('admin')).statusCode).toBe(201);
    for (let i = 0; i < 10; i++) {
      expect((await t.app.inject({ url: '/api/v1/clients', headers: t.as('editor') })).statusCode).toBe(200);
    }
  });
});

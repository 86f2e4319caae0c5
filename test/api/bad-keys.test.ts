/**
 * Bad keys cost almost nothing (issue 12): failed authentications are limited per client
 * address (429 without a key lookup), unknown keys never push known ones out of the key cache,
 * a flood is logged as aggregated lines, and an operator-chosen admin key is listed by an
 * identifier that shows none of it.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { hashKey } from '../../src/auth/api-keys.service.js';
import { appDepsFrom } from '../../src/main/api.js';
import { bootstrapAdminKey } from '../../src/main/system.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { dbBackends } from '../support/backends.js';

const ADMIN_KEY = 'operator-chosen-admin-key-0123456789';

describe.each(dbBackends())('bad keys on %s', (backend) => {
  let t: TestApp;
  let lookups = 0;
  beforeAll(async () => {
    t = await makeTestApp(backend, {
      AUTH_FAILURES_PER_MIN: '5',
      OMNIVIBE_ADMIN_KEY: ADMIN_KEY,
      // The flood below takes longer than the default 10 s on PostgreSQL: keep the known key cached meanwhile.
      AUTH_CACHE_TTL_MS: '3600000',
    });
    const repo = t.system.repos.apiKeys;
    const byHash = repo.byHash.bind(repo);
    repo.byHash = async (digest: string) => {
      lookups += 1;
      return byHash(digest);
    };
  });
  afterAll(async () => t.close());

  const get = (key: string, remoteAddress = '10.0.0.1') =>
    t.app.inject({
      method: 'GET',
      url: '/api/v1/clients',
      headers: { authorization: `Bearer ${key}` },
      remoteAddress,
    });

  it('limits failed authentications per address with a 429 that costs no lookup', async () => {
    expect((await get(t.keys.viewer)).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await get(`bad-${i}`)).statusCode).toBe(401);
    const before = lookups;
    for (let i = 0; i < 50; i++) {
      const r = await get(`flood-${i}`);
      expect(r.statusCode).toBe(429);
      expect(r.json()).toMatchObject({ error: { code: 'RATE_LIMITED', details: { scope: 'address' } } });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect((await get('')).statusCode).toBe(429);
    expect(lookups).toBe(before);
    // A key already known keeps working from the same address; other addresses are not affected.
    expect((await get(t.keys.viewer)).statusCode).toBe(200);
    expect((await get('bad-elsewhere', '10.0.0.2')).statusCode).toBe(401);
    expect((await get(t.keys.editor, '10.0.0.3')).statusCode).toBe(200);
  });

  it('keeps known keys cached while a flood of unknown keys passes', async () => {
    const apiKeys = t.system.apiKeys;
    expect(await apiKeys.verify(t.keys.admin)).toMatchObject({ role: 'admin' });
    for (let i = 0; i < 12_000; i++) expect(await apiKeys.verify(`unknown-${i}`)).toBeNull();
    const before = lookups;
    expect(await apiKeys.verify(t.keys.admin)).toMatchObject({ role: 'admin' });
    expect(lookups).toBe(before);
    // A repeated unknown key is answered from its own small cache too.
    expect(await apiKeys.verify('unknown-11999')).toBeNull();
    expect(lookups).toBe(before);
  }, 60_000);

  it('lists an operator-chosen admin key by an identifier that shows none of the secret', async () => {
    await bootstrapAdminKey(t.system);
    const listed = async () =>
      (await t.app.inject({ method: 'GET', url: '/api/v1/keys', headers: t.as('admin') }))
        .json<{
          items: { name: string; prefix: string }[];
        }>()
        .items.find((k) => k.name === 'admin (OMNIVIBE_ADMIN_KEY)');
    const expected = `op_${hashKey(ADMIN_KEY).slice(0, 8)}`;
    expect((await listed())?.prefix).toBe(expected);
    // A row registered when the listing showed the key's first characters is corrected at start.
    await t.system.database.db
      .updateTable('api_keys')
      .set({ prefix: ADMIN_KEY.slice(0, 11) })
      .where('key_hash', '=', hashKey(ADMIN_KEY))
      .execute();
    await bootstrapAdminKey(t.system);
    const prefix = (await listed())?.prefix ?? '';
    expect(prefix).toBe(expected);
    for (let n = 4; n <= prefix.length; n++) expect(ADMIN_KEY).not.toContain(prefix.slice(n - 4, n));
  });

  it('registers an operator-chosen key once when several processes start together', async () => {
    const key = 'another-operator-key-0123456789abcdef';
    // Every call looks the key up before any inserts it, as API processes starting at once do.
    const views = await Promise.all([1, 2, 3].map(() => t.system.apiKeys.ensure('racer', 'admin', key)));
    expect(new Set(views.map((v) => v.id)).size).toBe(1);
    const rows = await t.system.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('key_hash', '=', hashKey(key))
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('logs a flood of bad keys as aggregated lines, not two lines per request', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const app = await buildApp(appDepsFrom(t.system, { logger: pino({ level: 'info' }, sink) }));
    for (let i = 0; i < 300; i++) {
      await app.inject({
        method: 'GET',
        url: '/api/v1/clients',
        headers: { authorization: `Bearer x${i}` },
        remoteAddress: `10.1.${i % 3}.1`,
      });
    }
    await app.inject({ method: 'GET', url: '/api/v1/clients', headers: t.as('viewer') });
    await app.close();
    const parsed = lines.map(
      (l) => JSON.parse(l) as { msg: string; refused?: Record<string, number>; addresses?: number },
    );
    const aggregated = parsed.filter((l) => l.msg === 'refused requests (aggregated)');
    expect(aggregated).toHaveLength(1);
    expect(aggregated[0]).toMatchObject({ refused: { 401: 15, 429: 285 }, addresses: 3 });
    expect(parsed.filter((l) => l.msg === 'request completed')).toHaveLength(1);
    expect(parsed.length).toBeLessThan(10);
  });
});

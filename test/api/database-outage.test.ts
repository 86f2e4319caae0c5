/**
 * PostgreSQL stopped and started under a running app: requests get 503 with
 * Retry-After while it is gone, and the same app recovers by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { dbBackends } from '../support/backends.js';
import { createPostgresDatabase, type RunningService, startPostgres } from '../support/services.js';
import type { FastifyInstance } from 'fastify';

describe.runIf(dbBackends().includes('postgres'))('database outage on postgres', () => {
  let pg: RunningService;
  let system: System;
  let app: FastifyInstance;
  let key: string;
  beforeAll(async () => {
    pg = await startPostgres();
    const config = loadConfig({
      DATABASE_URL: await createPostgresDatabase(pg.url),
      LOG_LEVEL: 'silent',
      DB_CONNECT_TIMEOUT_MS: '1000',
      AUTH_CACHE_TTL_MS: '60000',
    });
    system = await createSystem(config, createLogger(config));
    app = await buildApp(appDepsFrom(system, { logger: false }));
    key = (await system.apiKeys.create('outage', 'editor')).key;
  }, 90_000);
  afterAll(async () => {
    await app?.close();
    await system?.close();
    await pg?.stop();
  });

  const get = (url: string) => app.inject({ url, headers: { authorization: `Bearer ${key}` } });

  it('answers 503 + Retry-After while PostgreSQL is down and recovers without a restart', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/clients',
      headers: { authorization: `Bearer ${key}` },
      payload: { name: 'before' },
    });
    expect(created.statusCode).toBe(201);
    expect((await get('/api/v1/clients')).statusCode).toBe(200);

    const restarted = pg.restart?.(1500);
    // Poll until the outage is visible, then check every answer during it.
    const down: number[] = [];
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const res = await get('/api/v1/clients');
      if (res.statusCode === 503) {
        expect(res.json().error.code).toBe('DATABASE_UNAVAILABLE');
        expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
        down.push(res.statusCode);
        const ready = await app.inject({ url: '/ready' });
        expect(ready.statusCode).toBe(503);
        expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
        break;
      }
      expect(res.statusCode).toBe(200);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(down.length).toBe(1);
    await restarted;

    // Back: the same app answers again once the pool reconnects.
    const until = Date.now() + 15_000;
    let last = 0;
    while (Date.now() < until) {
      last = (await get('/api/v1/clients')).statusCode;
      expect([200, 503]).toContain(last);
      if (last === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toBe(200);
    expect((await app.inject({ url: '/ready' })).statusCode).toBe(200);
    const after = await get('/api/v1/clients');
    expect((after.json().items as { name: string }[]).map((c) => c.name)).toContain('before');
  }, 60_000);
});

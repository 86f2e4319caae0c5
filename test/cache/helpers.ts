import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Role } from '../../src/db/types.js';
import { createDomainServices, type DomainServices } from '../../src/domain/services.js';
import { ChangeFeed } from '../../src/domain/changes.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { loadCacheConfig } from '../../src/config/cache.js';
import type { CacheService } from '../../src/cache/cache.service.js';
import { createCacheService } from '../../src/cache/create-cache.js';
import { type DbBackend, embeddedEnabled, freshDatabaseConfig, redisUrl } from '../support/backends.js';

export type CacheKind = 'memory' | 'redis' | 'redis+l1';

/** The cache kinds this run tests: memory in embedded runs, Redis and Redis with L1 in distributed runs. */
export function cacheKinds(): CacheKind[] {
  const out: CacheKind[] = [];
  if (embeddedEnabled()) out.push('memory');
  if (redisUrl() !== null) out.push('redis', 'redis+l1');
  return out;
}

/** Cache environment variables for a kind (Redis at `url`). */
export function cacheEnv(kind: CacheKind, url: string | null, extra: Record<string, string> = {}) {
  if (kind === 'memory') return { CACHE_MODE: 'memory', ...extra };
  if (!url) throw new Error('Redis is not available in this run');
  return {
    CACHE_MODE: 'redis',
    CACHE_REDIS_URL: url,
    CACHE_L1_MAX_ENTRIES: kind === 'redis+l1' ? '1000' : '0',
    ...extra,
  };
}

export const silentLogger = () => pino({ level: 'silent' });

export function makeCache(
  kind: CacheKind,
  url: string | null,
  extra: Record<string, string> = {},
): CacheService {
  const cache = createCacheService(loadCacheConfig(cacheEnv(kind, url, extra)), silentLogger());
  if (!cache) throw new Error('cache is off');
  return cache;
}

/** Resolves when the cache's store answers (and, with an L1, the bus is subscribed). Bounded. */
export async function cacheReady(cache: CacheService, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await cache.stats();
    if (s.circuit === 'closed' && s.namespace_keys !== null && (!s.l1.enabled || s.l1.connected)) return;
    if (Date.now() > deadline) throw new Error(`cache not ready in ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns the time it took, ms. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not true within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export interface CacheApp {
  app: FastifyInstance;
  system: System;
  /** Uncached services over the same database: the truth to compare responses with. */
  truth: DomainServices;
  as(role: Role): Record<string, string>;
  close(): Promise<void>;
}

/** The whole app with the cache of `kind`, on `databaseUrl` (sqlite::memory: or a PostgreSQL URL). */
export async function makeCacheApp(
  kind: CacheKind,
  databaseUrl: string,
  url: string | null,
  extra: Record<string, string> = {},
): Promise<CacheApp> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_WRITES_PER_MIN: '1000000',
    ...cacheEnv(kind, url, extra),
  });
  const system = await createSystem(config, createLogger(config));
  const app = await buildApp(appDepsFrom(system, { logger: false }));
  const keys = {} as Record<Role, string>;
  for (const role of ['admin', 'editor', 'viewer'] as const) {
    keys[role] = (await system.apiKeys.create(`test ${role}`, role)).key;
  }
  if (system.cache) await cacheReady(system.cache);
  return {
    app,
    system,
    truth: createDomainServices(system.repos, new ChangeFeed(system.logger)) /* reads only: nobody listens */,
    as: (role) => ({ authorization: `Bearer ${keys[role]}` }),
    async close() {
      await app.close();
      await system.close();
    },
  };
}

/** A database URL for a backend: in-memory SQLite, or a fresh PostgreSQL database. */
export async function databaseUrl(backend: DbBackend): Promise<string> {
  const db = await freshDatabaseConfig(backend);
  return db.dialect === 'sqlite' ? 'sqlite::memory:' : db.url;
}

/** Redis URL with a database index, so files that share the run's Redis keep their keys apart. */
export function redisDb(url: string | null, db: number): string | null {
  return url === null ? null : `${url}/${db}`;
}

/** Creates a client and a campaign through the API and returns a function that adds contents to it. */
export async function seedCampaign(t: CacheApp, platform = 'youtube') {
  const post = async (url: string, payload: Record<string, unknown>) =>
    (
      await t.app.inject({ method: 'POST', url: `/api/v1${url}`, headers: t.as('editor'), payload })
    ).json() as {
      id: number;
    };
  const client = await post('/clients', { name: 'seed' });
  const campaign = await post('/campaigns', { client_id: client.id, name: 'seed', platform });
  return {
    campaignId: campaign.id,
    addContent: async (title: string) => (await post(`/campaigns/${campaign.id}/contents`, { title })).id,
  };
}

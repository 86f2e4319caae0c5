import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Role } from '../../src/db/types.js';
import { appDepsFrom } from '../../src/main/api.js';
import type { Worker } from '../../src/jobs/worker/worker.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { startWorker } from '../../src/main/worker.js';
import { workerDefaults } from '../../src/main/worker-flags.js';
import { type DbBackend, freshDatabaseConfig, redisUrl } from './backends.js';

export interface TestApp {
  app: FastifyInstance;
  system: System;
  /** A key of each role. */
  keys: Record<Role, string>;
  /** Headers with the key of `role` (and JSON content type). */
  as(role: Role): Record<string, string>;
  close(): Promise<void>;
}

/** The whole app on a fresh database of `backend`, with one key per role. */
export async function makeTestApp(backend: DbBackend, env: Record<string, string> = {}): Promise<TestApp> {
  const db = await freshDatabaseConfig(backend);
  const config = loadConfig({
    DATABASE_URL: db.dialect === 'sqlite' ? 'sqlite::memory:' : db.url,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_WRITES_PER_MIN: '1000000',
    AUTH_FAILURES_PER_MIN: '1000000',
    ...env,
  });
  const system = await createSystem(config, createLogger(config));
  const app = await buildApp(appDepsFrom(system, { logger: false }));
  const keys = {} as Record<Role, string>;
  for (const role of ['admin', 'editor', 'viewer'] as const) {
    keys[role] = (await system.apiKeys.create(`test ${role}`, role)).key;
  }
  return {
    app,
    system,
    keys,
    as: (role) => ({ authorization: `Bearer ${keys[role]}` }),
    async close() {
      await app.close();
      await system.close();
    },
  };
}

/** Settings that put the jobs on `queue`: the embedded engine, or BullMQ on this run's Redis under a prefix of its own. */
export function queueEnv(queue: 'sqlite' | 'bullmq'): Record<string, string> {
  return queue === 'bullmq'
    ? {
        REDIS_URL: redisUrl() as string,
        JOBS_REDIS_PREFIX: `ov:q:t${Math.random().toString(36).slice(2, 8)}`,
      }
    : {};
}

/**
 * makeTestApp with its jobs on `queue` (the embedded engine, or BullMQ on this run's Redis under a
 * prefix of its own) and a worker of concurrency 2 in the same process; close() stops both.
 * `env` overrides settings (RATE_LIMIT_WRITES_PER_MIN...).
 */
export async function makeJobsTestApp(
  db: DbBackend,
  queue: 'sqlite' | 'bullmq',
  env: Record<string, string> = {},
): Promise<TestApp & { worker: Worker }> {
  const t = await makeTestApp(db, {
    ...queueEnv(queue),
    JOBS_LEASE_MS: '2000',
    JOBS_CLEANUP_INTERVAL_S: '0',
    ...env,
  });
  const worker = startWorker(t.system, t.system.jobs, { ...workerDefaults(t.system.config), concurrency: 2 });
  return {
    ...t,
    worker,
    async close() {
      await worker.stop({ timeoutMs: 1000 });
      await t.close();
    },
  };
}

import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Role } from '../../src/db/types.js';
import { appDepsFrom } from '../../src/main/api.js';
import { createLogger, createSystem, type System } from '../../src/main/system.js';
import { type DbBackend, freshDatabaseConfig } from './backends.js';

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

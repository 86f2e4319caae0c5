import { inject } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import { createPostgresDatabase } from './services.js';

export type DbBackend = 'sqlite' | 'postgres';

/** The database backends this run tests against (see global-setup.ts for TEST_MODE). */
export function dbBackends(): DbBackend[] {
  const mode = inject('testMode');
  const out: DbBackend[] = [];
  if (mode !== 'distributed') out.push('sqlite');
  if (mode !== 'embedded' && inject('postgresUrl')) out.push('postgres');
  return out;
}

/** True when this run includes the embedded (SQLite / in-process) backends. */
export const embeddedEnabled = () => inject('testMode') !== 'distributed';

/** The Redis server of this run, or null when Redis backends are not tested. */
export function redisUrl(): string | null {
  return inject('testMode') === 'embedded' ? null : inject('redisUrl');
}

/** A fresh, empty database for one test file: in-memory SQLite, or a new PostgreSQL database. */
export async function freshDatabaseConfig(backend: DbBackend): Promise<DatabaseConfig> {
  if (backend === 'sqlite') return { dialect: 'sqlite', file: ':memory:', busyTimeoutMs: 5000 };
  const server = inject('postgresUrl');
  if (!server) throw new Error('PostgreSQL is not available in this run');
  return {
    dialect: 'postgres',
    url: await createPostgresDatabase(server),
    poolMax: 10,
    statementTimeoutMs: 30_000,
    connectTimeoutMs: 5_000,
  };
}

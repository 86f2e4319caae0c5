/**
 * Starts the real services the selected test mode needs, once per run:
 *   TEST_MODE=embedded     SQLite, the embedded queue, the memory cache only;
 *   TEST_MODE=distributed  PostgreSQL and Redis only;
 *   unset                  every backend whose server binaries are on this machine.
 * TEST_POSTGRES_URL / TEST_REDIS_URL point at servers started elsewhere (CI) instead.
 */
import type { TestProject } from 'vitest/node';
import {
  postgresAvailable,
  redisAvailable,
  type RunningService,
  startPostgres,
  startRedis,
} from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    testMode: 'embedded' | 'distributed' | 'all';
    postgresUrl: string | null;
    redisUrl: string | null;
  }
}

export default async function setup(project: TestProject) {
  const raw = process.env.TEST_MODE ?? 'all';
  if (raw !== 'embedded' && raw !== 'distributed' && raw !== 'all') {
    throw new Error(`TEST_MODE=${raw} is invalid: expected embedded, distributed or all`);
  }
  const mode = raw;
  const started: RunningService[] = [];
  const wantServices = mode !== 'embedded';
  const strict = mode === 'distributed';

  let postgresUrl: string | null = null;
  let redisUrl: string | null = null;
  if (wantServices) {
    if (process.env.TEST_POSTGRES_URL) postgresUrl = process.env.TEST_POSTGRES_URL;
    else if (strict || postgresAvailable()) {
      const s = await startPostgres();
      started.push(s);
      postgresUrl = s.url;
    } else
      console.warn(
        '[tests] PostgreSQL binaries not found: PostgreSQL backends are skipped (TEST_MODE=distributed requires them)',
      );
    if (process.env.TEST_REDIS_URL) redisUrl = process.env.TEST_REDIS_URL;
    else if (strict || redisAvailable()) {
      const s = await startRedis();
      started.push(s);
      redisUrl = s.url;
    } else
      console.warn(
        '[tests] redis-server not found: Redis backends are skipped (TEST_MODE=distributed requires it)',
      );
  }
  project.provide('testMode', mode);
  project.provide('postgresUrl', postgresUrl);
  project.provide('redisUrl', redisUrl);
  return async () => {
    for (const s of started.reverse()) await s.stop();
  };
}

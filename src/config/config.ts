import path from 'node:path';
import { z } from 'zod';
import { ConfigError, intVar, parseEnv } from './env.js';
import { type HttpConfig, loadHttpConfig } from './http.js';
import { type CacheConfig, loadCacheConfig } from './cache.js';
import { type JobsConfig, loadJobsConfig } from './jobs.js';
import { loadMediaConfig, type MediaConfig } from './media.js';
import { loadTelemetryConfig, type TelemetryConfig } from './telemetry.js';

export { ConfigError } from './env.js';

/**
 * Process configuration, parsed once from the environment and frozen.
 * Defaults select embedded mode: a SQLite file under DATA_DIR, no services.
 * Every variable is listed, with its default, in `.env.example`.
 */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly database: DatabaseConfig;
  /** Redis for distributed mode (rate limits shared across API processes); unset in embedded mode. */
  readonly redisUrl: string | undefined;
  readonly adminKey: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest accepted request body, bytes. */
  readonly bodyLimitBytes: number;
  /** Write requests (POST, PUT, PATCH, DELETE) allowed per API key per minute. */
  readonly rateLimitWritesPerMin: number;
  /** How long a verified API key is trusted before the database is asked again (revocation delay across processes). */
  readonly authCacheTtlMs: number;
  /** After metrics are ingested, the campaign's roll-ups are recomputed at the end of a window of this length, ms (STATS_REFRESH_DELAY_MS, 5000). */
  readonly statsRefreshDelayMs: number;
  /** HTTP time-outs, event-stream limits, failed-authentication limit (see src/config/http.ts). */
  readonly http: HttpConfig;
  /** The cache: store, TTLs, Redis timeouts and L1 (see src/config/cache.ts). */
  readonly cache: CacheConfig;
  /** Job queues and workers (see src/config/jobs.ts). */
  readonly jobs: JobsConfig;
  /** Narration, verification, rendering, media storage and vendor prices (see src/config/media.ts). */
  readonly media: MediaConfig;
  /** Metrics, live figures and slow-query logging (see src/config/telemetry.ts). */
  readonly telemetry: TelemetryConfig;
}

export type DatabaseConfig =
  | { readonly dialect: 'sqlite'; readonly file: string; readonly busyTimeoutMs: number }
  | {
      readonly dialect: 'postgres';
      readonly url: string;
      readonly poolMax: number;
      readonly statementTimeoutMs: number;
      readonly connectTimeoutMs: number;
    };

const envSchema = z.object({
  PORT: intVar(0, 65535, 8000),
  HOST: z.string().trim().min(1, 'a host name or address').optional().default('127.0.0.1'),
  DATA_DIR: z.string().trim().min(1, 'a directory path').optional().default('./data'),
  DATABASE_URL: z
    .string()
    .trim()
    .regex(
      /^(sqlite:|postgres:\/\/|postgresql:\/\/)/,
      'sqlite:<file>, sqlite::memory:, or postgres://user:pass@host:port/db',
    )
    .optional(),
  DB_POOL_MAX: intVar(1, 1000, 10),
  DB_STATEMENT_TIMEOUT_MS: intVar(0, 3_600_000, 30_000),
  DB_CONNECT_TIMEOUT_MS: intVar(100, 600_000, 5_000),
  SQLITE_BUSY_TIMEOUT_MS: intVar(0, 600_000, 5_000),
  REDIS_URL: z
    .string()
    .trim()
    .regex(/^rediss?:\/\//, 'redis://host:port[/db] or rediss://...')
    .optional(),
  OMNIVIBE_ADMIN_KEY: z
    .string()
    .trim()
    .min(24, 'at least 24 characters')
    .max(200, 'at most 200 characters')
    .regex(/^[A-Za-z0-9_\-.]+$/, 'letters, digits, _ - .')
    .optional(),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .optional()
    .default('info'),
  BODY_LIMIT_BYTES: intVar(1024, 100 * 1024 * 1024, 1024 * 1024),
  RATE_LIMIT_WRITES_PER_MIN: intVar(1, 1_000_000, 600),
  AUTH_CACHE_TTL_MS: intVar(0, 3_600_000, 10_000),
  STATS_REFRESH_DELAY_MS: intVar(1, 86_400_000, 5000),
});

/** Parses the environment (default `process.env`) into a frozen Config, or throws ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(envSchema, env);
  const dataDir = path.resolve(e.DATA_DIR);
  const database = parseDatabase(e.DATABASE_URL, dataDir, e);
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    dataDir,
    database: Object.freeze(database),
    redisUrl: e.REDIS_URL,
    adminKey: e.OMNIVIBE_ADMIN_KEY,
    logLevel: e.LOG_LEVEL,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    rateLimitWritesPerMin: e.RATE_LIMIT_WRITES_PER_MIN,
    authCacheTtlMs: e.AUTH_CACHE_TTL_MS,
    statsRefreshDelayMs: e.STATS_REFRESH_DELAY_MS,
    // Capability sections below: each parses its own variables with parseEnv in its *.config.ts.
    http: loadHttpConfig(env),
    cache: loadCacheConfig(env),
    jobs: loadJobsConfig(env, dataDir),
    media: loadMediaConfig(env),
    telemetry: loadTelemetryConfig(env),
  });
}

function parseDatabase(
  url: string | undefined,
  dataDir: string,
  e: z.infer<typeof envSchema>,
): DatabaseConfig {
  if (url === undefined) {
    return {
      dialect: 'sqlite',
      file: path.join(dataDir, 'omnivibe.db'),
      busyTimeoutMs: e.SQLITE_BUSY_TIMEOUT_MS,
    };
  }
  if (url.startsWith('sqlite:')) {
    const rest = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (rest === '')
      throw new ConfigError(['DATABASE_URL="sqlite:" is invalid: expected sqlite:<file> or sqlite::memory:']);
    const file = rest === ':memory:' ? ':memory:' : path.resolve(rest);
    return { dialect: 'sqlite', file, busyTimeoutMs: e.SQLITE_BUSY_TIMEOUT_MS };
  }
  try {
    new URL(url);
  } catch {
    throw new ConfigError([`DATABASE_URL is invalid: expected postgres://user:pass@host:port/db`]);
  }
  return {
    dialect: 'postgres',
    url,
    poolMax: e.DB_POOL_MAX,
    statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
  };
}

import { z } from 'zod';
import { intVar, parseEnv } from './env.js';
import { type AlertsConfig, loadAlertsConfig } from './alerts.js';
import { loadTracingConfig, type TracingConfig } from './tracing.js';

/**
 * Observability settings: Prometheus metrics, the live figures every process publishes, and
 * slow-query logging. Every variable is listed with its default in `.env.example`.
 */
export interface TelemetryConfig {
  /** Instrumentation on (METRICS_ENABLED, default true): /metrics, the live summary and their hooks. */
  readonly metricsEnabled: boolean;
  /** A bearer token that may read /metrics on the API port besides an admin key (METRICS_TOKEN). */
  readonly metricsToken: string | undefined;
  /** Address of the separate metrics listeners (METRICS_HOST, default 127.0.0.1: loopback). */
  readonly metricsHost: string;
  /** The API process's separate /metrics listener without a key (METRICS_PORT); unset: none. */
  readonly apiMetricsPort: number | undefined;
  /** `omnivibe worker`'s /metrics port (WORKER_METRICS_PORT, default 9465; 0: none); `--metrics-port` overrides. */
  readonly workerMetricsPort: number;
  /** Each process publishes its live figures this often, ms (TELEMETRY_PUBLISH_MS, 10000). */
  readonly publishMs: number;
  /** Queries slower than this are counted and logged at warn with their statement, ms (DB_SLOW_QUERY_MS, 1000). */
  readonly slowQueryMs: number;
  /** Alert rules, evaluation and delivery channels (see src/config/alerts.ts). */
  readonly alerts: AlertsConfig;
  /** OpenTelemetry traces over OTLP (see src/config/tracing.ts); off unless an endpoint or LOGFIRE_TOKEN is set. */
  readonly tracing: TracingConfig;
}

const TOKEN = /^[A-Za-z0-9_\-.~+/=]{16,512}$/;

// Built on first use: config.ts imports this module, so nothing from it may run at import time.
const telemetryEnvSchema = () =>
  z.object({
    METRICS_ENABLED: z.enum(['true', 'false']).optional().default('true'),
    METRICS_TOKEN: z
      .string()
      .trim()
      .regex(TOKEN, '16 to 512 characters of A-Z a-z 0-9 _ - . ~ + / =')
      .optional(),
    METRICS_HOST: z.string().trim().min(1, 'a host name or address').optional().default('127.0.0.1'),
    METRICS_PORT: intVar(1, 65535, 0),
    WORKER_METRICS_PORT: intVar(0, 65535, 9465),
    DB_SLOW_QUERY_MS: intVar(1, 3_600_000, 1000),
    TELEMETRY_PUBLISH_MS: intVar(100, 60_000, 10_000),
  });

export function loadTelemetryConfig(env: NodeJS.ProcessEnv): TelemetryConfig {
  const e = parseEnv(telemetryEnvSchema(), env);
  return Object.freeze({
    metricsEnabled: e.METRICS_ENABLED === 'true',
    metricsToken: e.METRICS_TOKEN,
    metricsHost: e.METRICS_HOST,
    apiMetricsPort: e.METRICS_PORT === 0 ? undefined : e.METRICS_PORT,
    workerMetricsPort: e.WORKER_METRICS_PORT,
    slowQueryMs: e.DB_SLOW_QUERY_MS,
    publishMs: e.TELEMETRY_PUBLISH_MS,
    alerts: loadAlertsConfig(env),
    tracing: loadTracingConfig(env),
  });
}

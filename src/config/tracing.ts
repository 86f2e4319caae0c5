import { z } from 'zod';
import { ConfigError, httpUrl, intVar, parseEnv } from './env.js';

/**
 * OpenTelemetry tracing, configured by the standard OTEL_* variables (the subset an OTLP/HTTP trace
 * exporter uses) or by LOGFIRE_TOKEN, a shortcut to Logfire's OTLP endpoint. Off unless an endpoint
 * or a Logfire token is given. Parsed here once, like every setting: the SDK is handed these values
 * and never reads the environment itself, so a bad value stops the process at start with its name.
 */
export interface TracingConfig {
  /**
   * Spans are recorded and exported: an OTLP endpoint or LOGFIRE_TOKEN is set, OTEL_SDK_DISABLED is not
   * true and OTEL_TRACES_EXPORTER is not none.
   */
  readonly enabled: boolean;
  /** Where spans are POSTed: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else Logfire's. */
  readonly endpoint: string;
  /** OTLP/HTTP encoding (OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL: http/protobuf, the default, or http/json). */
  readonly protocol: 'http/protobuf' | 'http/json';
  /** Headers sent with each export (OTEL_EXPORTER_OTLP[_TRACES]_HEADERS, `k=v,k2=v2`, values URL-decoded; Logfire: Authorization). */
  readonly headers: Readonly<Record<string, string>>;
  /** One export request's time limit, ms (OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT, 10000). */
  readonly exportTimeoutMs: number;
  /** The `service.name` resource attribute (OTEL_SERVICE_NAME, default omnivibe). */
  readonly serviceName: string;
  /** Extra resource attributes (OTEL_RESOURCE_ATTRIBUTES, `k=v,...`). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /**
   * The sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on; OTEL_TRACES_SAMPLER_ARG the ratio
   * for the *traceidratio ones). Parent-based samplers follow the incoming `traceparent`'s decision.
   */
  readonly sampler: {
    readonly kind: 'always_on' | 'always_off' | 'traceidratio';
    readonly parentBased: boolean;
    readonly ratio: number;
  };
  /** Spans wait at most this long before they are exported, ms (OTEL_BSP_SCHEDULE_DELAY, 5000). */
  readonly scheduleDelayMs: number;
  /** Spans kept waiting for export; past it new ones are dropped, never waited for (OTEL_BSP_MAX_QUEUE_SIZE, 2048). */
  readonly maxQueueSize: number;
  /** Spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512; at most the queue size). */
  readonly maxExportBatchSize: number;
}

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

const PROTOCOLS = ['http/protobuf', 'http/json'] as const;

/** Logfire's OTLP base URL per region, as its tokens (`pylf_v<n>_<region>_...`) name them. */
const LOGFIRE_REGIONS: Readonly<Record<string, string>> = {
  us: 'https://logfire-us.pydantic.dev',
  eu: 'https://logfire-eu.pydantic.dev',
};

const pairs = (what: string) =>
  z
    .string()
    .trim()
    .refine(
      (v) => parsePairs(v) !== undefined,
      `${what}: comma-separated key=value pairs (values URL-encoded)`,
    )
    .optional();

const protocol = () =>
  z.enum(PROTOCOLS, { error: 'http/protobuf or http/json (gRPC is not supported)' }).optional();

// Built on first use: config.ts imports this module through telemetry.ts, so nothing here may run at import time.
const tracingEnvSchema = () =>
  z.object({
    OTEL_SDK_DISABLED: z.enum(['true', 'false'], { error: 'true or false' }).optional(),
    OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none'], { error: 'otlp or none' }).optional(),
    OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl('the collector base; /v1/traces is appended'),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl('the full traces endpoint'),
    OTEL_EXPORTER_OTLP_HEADERS: pairs('headers'),
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: pairs('headers'),
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol(),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol(),
    OTEL_EXPORTER_OTLP_TIMEOUT: intVar(1, 600_000, 10_000),
    // 0: unset (the general timeout applies).
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: intVar(1, 600_000, 0),
    OTEL_SERVICE_NAME: z
      .string()
      .trim()
      .regex(/^[\x21-\x7e][\x20-\x7e]{0,254}$/, '1 to 255 printable ASCII characters')
      .optional(),
    OTEL_RESOURCE_ATTRIBUTES: pairs('attributes'),
    OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { error: SAMPLERS.join(', ') }).optional(),
    OTEL_TRACES_SAMPLER_ARG: z
      .string()
      .trim()
      .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'a ratio from 0 to 1')
      .transform(Number)
      .optional(),
    OTEL_BSP_SCHEDULE_DELAY: intVar(1, 600_000, 5000),
    OTEL_BSP_MAX_QUEUE_SIZE: intVar(1, 1_000_000, 2048),
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: intVar(1, 1_000_000, 512),
    LOGFIRE_TOKEN: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_\-.]{8,512}$/, 'a Logfire write token (pylf_v1_<region>_...)')
      .optional(),
    LOGFIRE_BASE_URL: httpUrl('the Logfire base, e.g. https://logfire-eu.pydantic.dev'),
  });

/** `k=v,k2=v2` with URL-encoded values (the OTEL_*_HEADERS and OTEL_RESOURCE_ATTRIBUTES syntax), or undefined when malformed. */
export function parsePairs(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const key = part.slice(0, eq).trim();
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) return undefined;
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return out;
}

/** The base URL of the Logfire region a token names (`pylf_v1_eu_...`): US for tokens that name none. */
export function logfireBaseUrl(token: string): string | undefined {
  const region = /^pylf_v\d+_([a-z]+)_/.exec(token)?.[1];
  if (region === undefined) return LOGFIRE_REGIONS.us;
  return LOGFIRE_REGIONS[region];
}

export function loadTracingConfig(env: NodeJS.ProcessEnv): TracingConfig {
  const e = parseEnv(tracingEnvSchema(), env);
  let endpoint = e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (endpoint === undefined && e.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined)
    endpoint = `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  const headers: Record<string, string> = {
    ...parsePairs(e.OTEL_EXPORTER_OTLP_HEADERS ?? ''),
    ...parsePairs(e.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? ''),
  };
  // LOGFIRE_TOKEN only fills in the endpoint and the Authorization header: an explicit OTLP endpoint wins.
  if (e.LOGFIRE_TOKEN !== undefined) {
    if (endpoint === undefined) {
      const base = e.LOGFIRE_BASE_URL ?? logfireBaseUrl(e.LOGFIRE_TOKEN);
      if (base === undefined)
        throw new ConfigError([
          'LOGFIRE_TOKEN names a region this version does not know: set LOGFIRE_BASE_URL to its Logfire base URL',
        ]);
      endpoint = `${base.replace(/\/+$/, '')}/v1/traces`;
    }
    headers.Authorization ??= e.LOGFIRE_TOKEN;
  }
  const kind = e.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on';
  const ratioSampler = kind.endsWith('traceidratio');
  if (!ratioSampler && e.OTEL_TRACES_SAMPLER_ARG !== undefined)
    throw new ConfigError([
      `OTEL_TRACES_SAMPLER_ARG is set but OTEL_TRACES_SAMPLER=${kind} takes no ratio: use traceidratio or parentbased_traceidratio`,
    ]);
  const queue = e.OTEL_BSP_MAX_QUEUE_SIZE;
  return Object.freeze({
    enabled: endpoint !== undefined && e.OTEL_SDK_DISABLED !== 'true' && e.OTEL_TRACES_EXPORTER !== 'none',
    endpoint: endpoint ?? '',
    protocol: e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
    headers: Object.freeze(headers),
    exportTimeoutMs: e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT || e.OTEL_EXPORTER_OTLP_TIMEOUT,
    serviceName: e.OTEL_SERVICE_NAME ?? 'omnivibe',
    resourceAttributes: Object.freeze(parsePairs(e.OTEL_RESOURCE_ATTRIBUTES ?? '') ?? {}),
    sampler: Object.freeze({
      kind: kind.replace('parentbased_', '') as TracingConfig['sampler']['kind'],
      parentBased: kind.startsWith('parentbased_'),
      ratio: ratioSampler ? (e.OTEL_TRACES_SAMPLER_ARG ?? 1) : 1,
    }),
    scheduleDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
    maxQueueSize: queue,
    maxExportBatchSize: Math.min(e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, queue),
  });
}

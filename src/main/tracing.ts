/**
 * Starts OpenTelemetry tracing for a process (API, worker, sandbox child), when configured
 * (src/config/tracing.ts): the SDK's tracer provider with the configured sampler, a batch span
 * processor and an OTLP/HTTP exporter (protobuf or JSON), registered as the process's provider with
 * the AsyncLocalStorage context manager; Redis command spans from ioredis's diagnostics channels.
 * With tracing off nothing is loaded and nothing hooked.
 *
 * The SDK gets every value from the parsed configuration (we do not use sdk-node, which reads
 * OTEL_* itself and brings metrics, logs and gRPC exporters we do not use). Export never blocks a
 * request or a job: spans wait in a bounded queue (dropped past it), and a failed export (an
 * unreachable collector) is logged at most once a minute.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { TracingConfig } from '../config/tracing.js';
import { traceRedisCommands } from '../telemetry/redis-spans.js';
import { Tracing } from '../telemetry/tracing.js';

/** Failed exports are logged at most this often. */
const EXPORT_ERROR_LOG_INTERVAL_MS = 60_000;
/** Longest a process waits at exit for its last spans to be exported. */
const SHUTDOWN_WAIT_MAX_MS = 5000;

export interface TracingRuntime {
  readonly tracing: Tracing;
  /** Exports the spans still waiting (bounded by the export timeout, at most 5 s) and stops. */
  shutdown(): Promise<void>;
}

/** Logs the SDK's errors (failed exports) at most once per interval, with how many were not logged. */
function throttledErrorLog(logger: Pick<Logger, 'warn'>, endpoint: string): (err: unknown) => void {
  let lastAt = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastAt < EXPORT_ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastAt = now;
    logger.warn(
      { err, endpoint, notLogged: suppressed, intervalS: EXPORT_ERROR_LOG_INTERVAL_MS / 1000 },
      'trace export failed; spans are dropped while the OTLP endpoint is unreachable (logged at most once a minute)',
    );
    suppressed = 0;
  };
}

export async function startTracing(
  cfg: TracingConfig,
  logger: Pick<Logger, 'warn'>,
): Promise<TracingRuntime | undefined> {
  if (!cfg.enabled) return undefined;
  const [sdk, { OTLPTraceExporter }, { resourceFromAttributes }, core, api] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    cfg.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/api'),
  ]);
  const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
  const exporter = new OTLPTraceExporter({
    url: cfg.endpoint,
    headers: { ...cfg.headers },
    timeoutMillis: cfg.exportTimeoutMs,
  });
  const root =
    cfg.sampler.kind === 'always_on'
      ? new sdk.AlwaysOnSampler()
      : cfg.sampler.kind === 'always_off'
        ? new sdk.AlwaysOffSampler()
        : new sdk.TraceIdRatioBasedSampler(cfg.sampler.ratio);
  const provider = new sdk.NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': cfg.serviceName,
      'service.version': version,
      'process.pid': process.pid,
      ...cfg.resourceAttributes,
    }),
    sampler: cfg.sampler.parentBased ? new sdk.ParentBasedSampler({ root }) : root,
    spanProcessors: [
      new sdk.BatchSpanProcessor(exporter, {
        scheduledDelayMillis: cfg.scheduleDelayMs,
        maxQueueSize: cfg.maxQueueSize,
        maxExportBatchSize: cfg.maxExportBatchSize,
        exportTimeoutMillis: cfg.exportTimeoutMs,
      }),
    ],
  });
  core.setGlobalErrorHandler(throttledErrorLog(logger, cfg.endpoint));
  // The process's provider, context manager (AsyncLocalStorage) and W3C propagator.
  provider.register();
  const tracing = new Tracing(
    provider.getTracer('omnivibe', version),
    new core.W3CTraceContextPropagator(),
    cfg.sampler.parentBased,
  );
  const stopRedis = traceRedisCommands(tracing);
  return {
    tracing,
    async shutdown() {
      stopRedis();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch((err: unknown) => logger.warn({ err }, 'tracing shutdown failed')),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.min(cfg.exportTimeoutMs, SHUTDOWN_WAIT_MAX_MS));
        }),
      ]);
      clearTimeout(timer);
      // Unregistered, so a later System in this process (tests) can register its own.
      api.trace.disable();
      api.context.disable();
      api.propagation.disable();
    },
  };
}

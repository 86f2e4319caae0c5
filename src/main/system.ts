import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ApiKeysService } from '../auth/api-keys.service.js';
import type { CacheService } from '../cache/cache.service.js';
import { createCacheService, sharedSqliteOf } from '../cache/create-cache.js';
import type { Config } from '../config/config.js';
import { type DatabaseHandle, openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrator.js';
import { createRepos, type Repos } from '../db/repos.js';
import type { ChangeFeed } from '../domain/changes.js';
import { createDomainServices, type DomainServices } from '../domain/services.js';
import { withCachedReads } from '../domain-cache/cached-services.js';
import { changeFeedFor } from '../domain-cache/generations.js';
import { createJobQueue } from '../jobs/create-queue.js';
import { Jobs } from '../jobs/jobs.js';
import { MediaRequests } from '../media/media-requests.js';
import { Shortcuts } from '../jobs/shortcuts.js';
import { createMediaServices, type MediaServices } from '../media/media-services.js';
import { settleRowsOfTask } from '../media/unfinished-rows.js';
import { ADMIN_ENQUEUEABLE, createTaskRegistry } from '../tasks/index.js';
import { refreshStatsOnIngest } from '../tasks/stats-refresh.js';
import { cacheCountersSource } from '../telemetry/cache-metrics.js';
import { dbQueryObserver } from '../telemetry/db-metrics.js';
import { liveQueueSource, queueDepthSource } from '../telemetry/job-metrics.js';
import { AlertsRepo } from '../db/alerts.repo.js';
import { AlertEvaluator } from '../telemetry/alerts/alert-evaluator.js';
import { AlertNotifier } from '../telemetry/alerts/alert-notifier.js';
import { LivePublisher } from '../telemetry/live-publisher.js';
import { LiveRecorder } from '../telemetry/live-recorder.js';
import { LiveSummary } from '../telemetry/live-summary.js';
import { Metrics } from '../telemetry/metrics.js';
import type { Tracing } from '../telemetry/tracing.js';
import { startTracing } from './tracing.js';

export { createLogger } from './logger.js';

/** Everything a process builds from its Config: the composition root's output. */
export interface System {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  repos: Repos;
  services: DomainServices;
  /** Where this process's writers announce their changes; the cache (if any) is subscribed. */
  changes: ChangeFeed;
  apiKeys: ApiKeysService;
  /** Redis connection for shared rate limits, in distributed mode. */
  rateLimitRedis?: Redis;
  /** The cache (memory in embedded mode, Redis when CACHE_REDIS_URL or REDIS_URL is set); absent with CACHE_MODE=off. */
  cache?: CacheService;
  /** The job queue (embedded SQLite engine, or BullMQ when REDIS_URL is set) and the task registry. */
  jobs: Jobs;
  /** The job system's fast paths through dependencies' internals: configured, probed, counted (shortcuts.ts). */
  shortcuts: Shortcuts;
  /** The media pipeline: narration, renders, storage, vendor costs. */
  media: MediaServices;
  /** The media use cases the API offers (queue narration and renders, downloads, costs). */
  mediaRequests: MediaRequests;
  /**
   * This process's Prometheus metrics and live figures (the roots start `publisher`; `summary`
   * merges every process's figures); absent with METRICS_ENABLED=false.
   */
  telemetry?: {
    metrics: Metrics;
    live: LiveRecorder;
    publisher: LivePublisher;
    summary: LiveSummary;
    alerts: { repo: AlertsRepo; notifier: AlertNotifier; evaluator: AlertEvaluator | undefined };
  };
  /** OpenTelemetry spans of this process (src/main/tracing.ts); absent unless an OTLP endpoint or LOGFIRE_TOKEN is set. */
  tracing?: Tracing;
  close(): Promise<void>;
}

export interface CreateSystemOptions {
  /** Apply pending migrations first (default true). */
  migrate?: boolean;
}

/** Opens the database (migrating it), and wires repositories and services. */
export async function createSystem(
  config: Config,
  logger: Logger,
  opts: CreateSystemOptions = {},
): Promise<System> {
  const tracingRuntime = await startTracing(config.telemetry.tracing, logger);
  const tracing = tracingRuntime?.tracing;
  const live = config.telemetry.metricsEnabled ? new LiveRecorder() : undefined;
  const metrics = live
    ? new Metrics({ live, ...(tracing ? { traceId: () => tracing.sampledTraceId() } : {}) })
    : undefined;
  const queryMetrics = metrics
    ? dbQueryObserver(metrics, config.database.dialect, config.telemetry.slowQueryMs, logger)
    : undefined;
  const querySpans = tracing?.dbQueries(config.database.dialect);
  const database = openDatabase(config.database, {
    onPoolError: (err) => logger.warn({ err }, 'idle database connection failed; the pool reconnects'),
    onQuery:
      queryMetrics && querySpans
        ? (q) => {
            queryMetrics(q);
            querySpans(q);
          }
        : (queryMetrics ?? querySpans),
  });
  try {
    if (opts.migrate ?? true) {
      const { applied } = await migrateToLatest(database.db, config.database);
      if (applied.length > 0) logger.info({ applied }, 'database migrations applied');
    }
  } catch (err) {
    await database.close();
    await tracingRuntime?.shutdown();
    throw err;
  }
  const repos = createRepos(database.db, database.dialect);
  const apiKeys = new ApiKeysService(repos.apiKeys, {
    cacheTtlMs: config.authCacheTtlMs,
    onTouchError: (err) => logger.warn({ err }, 'could not record API key use'),
  });
  const rateLimitRedis = config.redisUrl
    ? new Redis(config.redisUrl, {
        maxRetriesPerRequest: 1,
        connectTimeout: 2000,
        enableOfflineQueue: false,
        lazyConnect: false,
      })
    : undefined;
  rateLimitRedis?.on('error', (err) => logger.warn({ err }, 'rate-limit Redis connection error'));
  const cache = createCacheService(config.cache, logger, {
    sharedSqlite: sharedSqliteOf(config.database),
    traceRead: tracing?.cacheReads(),
  });
  const changes = changeFeedFor(logger, cache);
  const shortcuts = new Shortcuts(config.jobs.shortcuts);
  const jobs = new Jobs(
    createJobQueue(config, logger, shortcuts),
    createTaskRegistry(),
    ADMIN_ENQUEUEABLE,
    metrics ? (req) => metrics.jobEnqueued(req.queue, req.name) : undefined,
    tracing?.jobs(),
  );
  const media = createMediaServices(config.media, database.db, database.dialect, logger, {
    changes,
    observer: metrics,
    spans: tracing?.media(),
  });
  const services = createDomainServices(repos, changes);
  refreshStatsOnIngest(changes, jobs, { delayMs: config.statsRefreshDelayMs });
  let telemetry: System['telemetry'];
  if (metrics && live) {
    metrics.addScrapeSource(queueDepthSource(metrics, jobs.admin));
    const cacheSource = cache ? cacheCountersSource(metrics, cache, live) : undefined;
    if (cacheSource) metrics.addScrapeSource(cacheSource);
    if (cache) metrics.setCacheLatencySource(() => cache.prefixReads());
    const queueSample = liveQueueSource(live, jobs.admin);
    const publisher = new LivePublisher({
      db: database.db,
      recorder: live,
      intervalMs: config.telemetry.publishMs,
      logger,
      beforeTake: async () => {
        cacheSource?.();
        await queueSample();
      },
    });
    const summary = new LiveSummary({ db: database.db, counts: () => jobs.admin.counts() });
    const alertsCfg = config.telemetry.alerts;
    const repo = new AlertsRepo(database.db);
    const notifier = new AlertNotifier(alertsCfg);
    const evaluator =
      alertsCfg.evalIntervalMs > 0
        ? new AlertEvaluator({
            rules: alertsCfg.rules,
            repo,
            notifier,
            summary: (w) => summary.summary(w),
            workers: () => jobs.admin.listWorkers(),
            ping: () => database.ping(),
            intervalMs: alertsCfg.evalIntervalMs,
            repeatIntervalMs: alertsCfg.repeatIntervalMs,
            logger,
            holder: publisher.process,
          })
        : undefined;
    telemetry = { metrics, live, publisher, summary, alerts: { repo, notifier, evaluator } };
  }
  // A render or narration row whose task ended without finishing it (cancelled, failed for good, dead)
  // is ended at once where the engine reports that here; reads and the cleanup sweep cover the rest.
  const settle = (taskId: string) =>
    void settleRowsOfTask(media.repo, jobs.admin, taskId).catch((err: unknown) =>
      logger.warn({ err, taskId }, 'could not end the media rows of an ended task'),
    );
  jobs.admin.on('failed', (id, _error, final) => final && settle(id));
  jobs.admin.on('stalled', (id, dead) => dead && settle(id));
  return {
    config,
    logger,
    database,
    repos,
    services: cache ? withCachedReads(services, cache) : services,
    changes,
    cache,
    apiKeys,
    rateLimitRedis,
    jobs,
    shortcuts,
    media,
    mediaRequests: new MediaRequests(media, jobs, jobs.admin),
    telemetry,
    tracing,
    async close() {
      await telemetry?.alerts.evaluator?.close();
      await telemetry?.publisher.close();
      await jobs.close(5000);
      await media.close();
      rateLimitRedis?.disconnect();
      await cache?.close();
      await database.close();
      await tracingRuntime?.shutdown();
    },
  };
}

/**
 * Makes sure an admin can get in: registers OMNIVIBE_ADMIN_KEY when set, otherwise
 * creates an admin key on the first start (no active keys) and returns it to be printed once.
 */
export async function bootstrapAdminKey(system: System): Promise<string | undefined> {
  if (system.config.adminKey) {
    await system.apiKeys.ensure('admin (OMNIVIBE_ADMIN_KEY)', 'admin', system.config.adminKey);
    return undefined;
  }
  if ((await system.apiKeys.countActive()) > 0) return undefined;
  const { key } = await system.apiKeys.create('admin (first start)', 'admin');
  return key;
}

import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Server } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { ApiKeysService } from '../auth/api-keys.service.js';
import type { CacheService } from '../cache/cache.service.js';
import type { Config } from '../config/config.js';
import type { CampaignStatsRepo } from '../db/campaign-stats.repo.js';
import type { DatabaseHandle } from '../db/database.js';
import type { DomainServices } from '../domain/services.js';
import type { Jobs } from '../jobs/jobs.js';
import { AppError } from '../errors.js';
import { FailedAuthLimiter } from '../auth/failed-auth-limiter.js';
import { registerAuth } from './plugins/auth.js';
import { RequestLogController } from './plugins/request-log.js';
import { BULL_BOARD_PATH, type BullBoardQueue, bullBoardPlugin } from './plugins/bull-board.js';
import { registerHttpMetrics } from './plugins/http-metrics.js';
import { registerHttpTracing } from './plugins/http-tracing.js';
import type { LiveSummary } from '../telemetry/live-summary.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Tracing } from '../telemetry/tracing.js';
import { observabilityRoutes } from './routes/observability.routes.js';
import { alertsRoutes } from './routes/alerts.routes.js';
import type { AlertsRepo } from '../db/alerts.repo.js';
import type { AlertNotifier } from '../telemetry/alerts/alert-notifier.js';
import { adminRoutes } from './routes/admin.routes.js';
import { adminOverviewRoutes } from './routes/admin-overview.routes.js';
import { type ClassifyDbError, registerErrorHandling, sendError, toAppError } from './plugins/errors.js';
import { ajvOptions, registerStrictInput } from './plugins/strict-input.js';
import { registerCloseOnRefusedBody, serverTimeouts } from './plugins/slow-clients.js';
import { TaskEventHub } from './task-event-streams.js';
import { cacheRoutes } from './routes/cache.routes.js';
import { campaignsRoutes } from './routes/campaigns.routes.js';
import { clientsRoutes } from './routes/clients.routes.js';
import { contentsRoutes } from './routes/contents.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { keysRoutes } from './routes/keys.routes.js';
import { metricsRoutes } from './routes/metrics.routes.js';
import { scriptsRoutes } from './routes/scripts.routes.js';
import { campaignStatsRoutes } from './routes/campaign-stats.routes.js';
import { queuesRoutes } from './routes/queues.routes.js';
import { tasksRoutes } from './routes/tasks.routes.js';
import { mediaRoutes } from './routes/media.routes.js';
import { assetsRoutes } from './routes/assets.routes.js';
import type { AssetService } from '../media/assets/asset.service.js';
import type { MediaRequests } from '../media/media-requests.js';
import { ErrorBody } from './schemas.js';

export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  /** Whether the database's schema is at the latest migration (`/ready`). */
  migrationsCurrent: () => Promise<boolean>;
  /** Which database failure an error is, so it maps to 503, 409 or 422 instead of 500. */
  classifyDbError: ClassifyDbError;
  services: DomainServices;
  apiKeys: ApiKeysService;
  /** A pino logger, or false for none (tests). */
  logger: FastifyBaseLogger | false;
  /** Shared store for per-key write rate limits across API processes (distributed mode); in-process when absent. */
  rateLimitRedis?: Redis;
  /** The cache, for its management routes (/cache/...); absent when caching is off. */
  cache?: CacheService;
  /** The daily roll-ups of stats.aggregate (/campaigns/{id}/stats). */
  campaignStats: CampaignStatsRepo;
  /** The job queue, for the task API (/tasks, /queues, /workers) and the operators' pages (/admin). */
  jobs?: Jobs;
  /** The BullMQ queues shown by Bull Board at /admin/queues (distributed mode); none: no board. */
  bullBoardQueues?: readonly BullBoardQueue[];
  /** Narration, renders and costs (/contents/{id}/audio, /renders/..., /costs). */
  media?: MediaRequests;
  /** This process's metrics: requests are timed and GET /metrics serves them (admin key or METRICS_TOKEN). */
  metrics?: Metrics;
  /** Uploaded assets and the logo/music choices (/clients/{id}/assets, /assets/...). */
  assets?: { service: AssetService; maxBytes: number };
  /** The live figures over every process (/observability/summary and /stream). */
  liveSummary?: LiveSummary;
  /** Alert history and test notifications (/alerts, /alerts/test). */
  alerts?: { repo: AlertsRepo; notifier: AlertNotifier };
  /** A span per request (tracing on; see plugins/http-tracing.ts). */
  tracing?: Tracing;
}

const API_PREFIX = '/api/v1';

/** Builds the HTTP application without listening, so tests can use `inject()`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const requestLog = new RequestLogController();
  const options: FastifyHttpOptions<Server> = {
    bodyLimit: deps.config.bodyLimitBytes,
    ...serverTimeouts(deps.config.http),
    trustProxy: false,
    ajv: ajvOptions,
    // A path that is not valid percent-encoding, or a path parameter too long, gets the API's error body.
    frameworkErrors: (err, _request, reply) => sendError(reply, toAppError(err, deps.classifyDbError)),
    ...(deps.logger ? { loggerInstance: deps.logger, logController: requestLog } : { logger: false }),
  };
  const app = Fastify(options).withTypeProvider<TypeBoxTypeProvider>();
  // First, so every later hook and the handler run inside the request's span.
  if (deps.tracing) registerHttpTracing(app, deps.tracing);
  registerErrorHandling(app, deps.classifyDbError);
  if (deps.logger) {
    requestLog.start(app.log);
    app.addHook('onClose', async () => requestLog.stop());
  }
  registerStrictInput(app);
  registerCloseOnRefusedBody(app);
  app.addSchema(ErrorBody);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'OmniVibe Pro API',
        version: '1.0.0',
        description: 'Campaigns, scripts, narration, renders and performance for AI video production.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'API key' } } },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());

  // The docs page and its assets are open, like /openapi.json.
  registerAuth(app, deps.apiKeys, new FailedAuthLimiter(deps.config.http.authFailuresPerMin), ['/docs']);
  if (deps.metrics)
    registerHttpMetrics(app, {
      metrics: deps.metrics,
      apiKeys: deps.apiKeys,
      metricsToken: deps.config.telemetry.metricsToken,
    });
  // Writes are limited per API key, one count per request whatever the route (a route-level limit
  // would give every route its own counter); reads are not, and carry no limiter hook at all (hot path).
  const writeLimit = { max: deps.config.rateLimitWritesPerMin, timeWindow: 60_000 };
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.every((m) => m === 'GET' || m === 'HEAD' || m === 'OPTIONS')) {
      route.config = { ...route.config, rateLimit: false };
    }
  });
  await app.register(rateLimit, {
    global: true,
    ...writeLimit,
    keyGenerator: (req) => (req.principal ? `key:${req.principal.keyId}` : `ip:${req.ip}`),
    // A Redis outage must not block writes: the limiter fails open.
    ...(deps.rateLimitRedis
      ? { redis: deps.rateLimitRedis, nameSpace: 'ov:ratelimit:v1:', skipOnError: true }
      : {}),
    errorResponseBuilder: (_req, ctx) =>
      new AppError(
        'RATE_LIMITED',
        `at most ${ctx.max} writes per minute per key`,
        { limit: ctx.max },
        ctx.ttl / 1000,
      ),
  });

  await app.register(healthRoutes, { database: deps.database, migrationsCurrent: deps.migrationsCurrent });
  await app.register(
    async (api) => {
      const s = deps.services;
      await api.register(clientsRoutes, { clients: s.clients });
      await api.register(campaignsRoutes, { campaigns: s.campaigns });
      await api.register(contentsRoutes, { contents: s.contents });
      await api.register(scriptsRoutes, { scripts: s.scripts });
      await api.register(metricsRoutes, { metrics: s.metrics });
      await api.register(keysRoutes, { apiKeys: deps.apiKeys });
      if (deps.liveSummary)
        await api.register(observabilityRoutes, {
          summary: deps.liveSummary,
          minStepMs: deps.config.telemetry.publishMs,
        });
      if (deps.alerts) await api.register(alertsRoutes, deps.alerts);
      if (deps.cache) await api.register(cacheRoutes, { cache: deps.cache });
      await api.register(campaignStatsRoutes, { campaignStats: deps.campaignStats, cache: deps.cache });
      if (deps.jobs) {
        const http = deps.config.http;
        const events = new TaskEventHub(
          deps.jobs.admin,
          {
            maxPerKey: http.eventStreamsPerKey,
            maxTotal: http.eventStreamsMax,
            maxLifetimeMs: http.eventStreamLifetimeMs,
          },
          http.eventStreamPollMs,
        );
        api.addHook('onClose', async () => events.close());
        await api.register(tasksRoutes, { jobs: deps.jobs, db: deps.database.db, events });
        await api.register(queuesRoutes, { queue: deps.jobs.admin });
      }
      if (deps.media) await api.register(mediaRoutes, { media: deps.media, cache: deps.cache });
      if (deps.assets)
        await api.register(assetsRoutes, { assets: deps.assets.service, maxBytes: deps.assets.maxBytes });
    },
    { prefix: API_PREFIX },
  );
  if (deps.jobs) {
    await app.register(adminRoutes, { prefix: '/admin', jobs: deps.jobs, db: deps.database.db });
  }
  if (deps.liveSummary)
    await app.register(adminOverviewRoutes, {
      prefix: '/admin',
      summary: deps.liveSummary,
      minStepMs: deps.config.telemetry.publishMs,
    });
  if (deps.bullBoardQueues)
    await app.register(bullBoardPlugin, { prefix: BULL_BOARD_PATH, queues: deps.bullBoardQueues });
  return app;
}

import type { FastifyInstance } from 'fastify';
import { type AppDeps, buildApp } from '../api/app.js';
import { BullmqQueue } from '../jobs/bullmq/bullmq-queue.js';
import { startMetricsServer } from '../telemetry/metrics-server.js';
import type { System } from './system.js';
import { classifyDbError } from '../db/db-errors.js';
import { migrationsCurrent } from '../db/migrator.js';

/** The app's dependencies taken from a System (serve and tests build the app the same way). */
export function appDepsFrom(system: System, overrides: Partial<AppDeps> = {}): AppDeps {
  return {
    config: system.config,
    database: system.database,
    migrationsCurrent: () => migrationsCurrent(system.database.db, system.database.dialect),
    classifyDbError,
    services: system.services,
    apiKeys: system.apiKeys,
    logger: system.logger,
    rateLimitRedis: system.rateLimitRedis,
    cache: system.cache,
    campaignStats: system.repos.campaignStats,
    jobs: system.jobs,
    bullBoardQueues: system.jobs.admin instanceof BullmqQueue ? system.jobs.admin.bullQueues() : undefined,
    media: system.mediaRequests,
    metrics: system.telemetry?.metrics,
    assets: { service: system.media.assets, maxBytes: system.config.media.assets.maxBytes },
    liveSummary: system.telemetry?.summary,
    alerts: system.telemetry?.alerts,
    tracing: system.tracing,
    ...overrides,
  };
}

/**
 * Builds the HTTP app from a System and listens on HOST:PORT; with METRICS_PORT, also serves
 * /metrics without a key on METRICS_HOST (loopback by default), closed with the app.
 */
export async function serve(system: System): Promise<FastifyInstance> {
  const app = await buildApp(appDepsFrom(system));
  await app.listen({ port: system.config.port, host: system.config.host });
  system.telemetry?.publisher.begin('api');
  system.telemetry?.alerts.evaluator?.start();
  const { telemetry } = system.config;
  const metrics = system.telemetry?.metrics;
  if (metrics && telemetry.apiMetricsPort !== undefined) {
    const server = await startMetricsServer(
      metrics,
      telemetry.metricsHost,
      telemetry.apiMetricsPort,
      system.logger,
    );
    app.addHook('onClose', () => server.close());
    system.logger.info({ url: `http://${telemetry.metricsHost}:${server.port}/metrics` }, 'metrics listener');
  }
  return app;
}

import type { FastifyInstance } from 'fastify';
import { type AppDeps, buildApp } from '../api/app.js';
import { BullmqQueue } from '../jobs/bullmq/bullmq-queue.js';
import type { System } from './system.js';

/** The app's dependencies taken from a System (serve and tests build the app the same way). */
export function appDepsFrom(system: System, overrides: Partial<AppDeps> = {}): AppDeps {
  return {
    config: system.config,
    database: system.database,
    services: system.services,
    apiKeys: system.apiKeys,
    logger: system.logger,
    rateLimitRedis: system.rateLimitRedis,
    cache: system.cache,
    campaignStats: system.repos.campaignStats,
    jobs: system.jobs,
    bullBoardQueues: system.jobs.queue instanceof BullmqQueue ? system.jobs.queue.bullQueues() : undefined,
    media: system.mediaRequests,
    ...overrides,
  };
}

/** Builds the HTTP app from a System and listens on HOST:PORT. */
export async function serve(system: System): Promise<FastifyInstance> {
  const app = await buildApp(appDepsFrom(system));
  await app.listen({ port: system.config.port, host: system.config.host });
  return app;
}

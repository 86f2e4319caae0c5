import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { System } from './system.js';

/** Builds the HTTP app from a System and listens on HOST:PORT. */
export async function serve(system: System): Promise<FastifyInstance> {
  const app = await buildApp({
    config: system.config,
    database: system.database,
    services: system.services,
    apiKeys: system.apiKeys,
    logger: system.logger,
    rateLimitRedis: system.rateLimitRedis,
  });
  await app.listen({ port: system.config.port, host: system.config.host });
  return app;
}

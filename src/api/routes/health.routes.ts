import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { DatabaseHandle } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { errorResponses } from '../schemas.js';

/** `/health` is liveness (the process answers); `/ready` checks the database and its migrations. */
export const healthRoutes: FastifyPluginAsyncTypebox<{
  database: DatabaseHandle;
  migrationsCurrent: () => Promise<boolean>;
}> = async (app, { database, migrationsCurrent }) => {
  const config = { auth: 'public' as const };
  const tags = ['health'];
  let migrated = false;
  app.get(
    '/health',
    { config, schema: { tags, response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/ready',
    {
      config,
      schema: {
        tags,
        response: {
          200: Type.Object({ status: Type.Literal('ready'), database: Type.String() }),
          ...errorResponses(503),
        },
      },
    },
    async () => {
      await database.ping();
      // Once current, migrations stay current for this process's lifetime.
      if (!migrated) migrated = await migrationsCurrent();
      if (!migrated)
        throw new AppError(
          'DATABASE_UNAVAILABLE',
          'database migrations are pending',
          { reason: 'migrations' },
          5,
        );
      return { status: 'ready' as const, database: database.dialect };
    },
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { ApiKeysService } from '../../auth/api-keys.service.js';
import { ApiKeySchema, IdParams, Name, Role, errorResponses } from '../schemas.js';

export const keysRoutes: FastifyPluginAsyncTypebox<{ apiKeys: ApiKeysService }> = async (
  app,
  { apiKeys },
) => {
  const tags = ['keys'];
  const config = { auth: 'admin' as const };
  app.get(
    '/keys',
    { config, schema: { tags, response: { 200: Type.Object({ items: Type.Array(ApiKeySchema) }) } } },
    async () => ({ items: await apiKeys.list() }),
  );
  app.post(
    '/keys',
    {
      config,
      schema: {
        tags,
        description: 'Creates a key. The response is the only time the key is shown.',
        body: Type.Object({ name: Name, role: Role }, { additionalProperties: false }),
        response: { 201: Type.Object({ key: Type.String(), record: ApiKeySchema }), ...errorResponses(400) },
      },
    },
    async (req, reply) => reply.status(201).send(await apiKeys.create(req.body.name, req.body.role)),
  );
  app.post(
    '/keys/:id/revoke',
    { config, schema: { tags, params: IdParams, response: { 200: ApiKeySchema, ...errorResponses(404) } } },
    async (req) => apiKeys.revoke(req.params.id),
  );
};

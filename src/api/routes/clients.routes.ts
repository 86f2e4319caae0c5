import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { DomainServices } from '../../domain/services.js';
import {
  ClientSchema,
  Cursor,
  IdParams,
  Limit,
  Name,
  Nullable,
  Text,
  errorResponses,
  page,
} from '../schemas.js';

const ClientBody = Type.Object(
  {
    name: Name,
    brand_color: Type.Optional(
      Nullable(Type.String({ pattern: '^#[0-9A-Fa-f]{6}$', description: '#RRGGBB' })),
    ),
    industry: Type.Optional(Nullable(Text(100))),
    contact_email: Type.Optional(Nullable(Type.String({ format: 'email', maxLength: 254 }))),
  },
  { additionalProperties: false },
);
const ClientPatch = Type.Partial(ClientBody, { additionalProperties: false, minProperties: 1 });

export const clientsRoutes: FastifyPluginAsyncTypebox<Pick<DomainServices, 'clients'>> = async (
  app,
  { clients },
) => {
  const tags = ['clients'];
  app.post(
    '/clients',
    { schema: { tags, body: ClientBody, response: { 201: ClientSchema, ...errorResponses(400, 401, 403) } } },
    async (req, reply) => reply.status(201).send(await clients.create(req.body)),
  );
  app.get(
    '/clients',
    {
      schema: {
        tags,
        querystring: Type.Object(
          { limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) },
          { additionalProperties: false },
        ),
        response: { 200: page(ClientSchema) },
      },
    },
    async (req) => clients.list(req.query),
  );
  app.get(
    '/clients/:id',
    { schema: { tags, params: IdParams, response: { 200: ClientSchema, ...errorResponses(404) } } },
    async (req) => clients.get(req.params.id),
  );
  app.patch(
    '/clients/:id',
    {
      schema: {
        tags,
        params: IdParams,
        body: ClientPatch,
        response: { 200: ClientSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => clients.update(req.params.id, req.body),
  );
  app.delete(
    '/clients/:id',
    { schema: { tags, params: IdParams, response: { 204: Type.Null(), ...errorResponses(404) } } },
    async (req, reply) => {
      await clients.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
};

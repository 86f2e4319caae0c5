import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { DomainServices } from '../../domain/services.js';
import {
  ContentSchema,
  ContentStatus,
  Cursor,
  DateTime,
  IdParams,
  Limit,
  Nullable,
  Platform,
  Text,
  errorResponses,
  page,
} from '../schemas.js';

const ContentFields = {
  title: Text(300, 1),
  platform: Type.Optional(Platform),
  status: Type.Optional(ContentStatus),
  keywords: Type.Optional(Type.Array(Text(100, 1), { maxItems: 50 })),
  publish_at: Type.Optional(Nullable(DateTime)),
  published_at: Type.Optional(Nullable(DateTime)),
};
const ContentBody = Type.Object(ContentFields, { additionalProperties: false });
const ContentPatch = Type.Partial(ContentBody, { additionalProperties: false, minProperties: 1 });

const ListQuery = Type.Object(
  {
    status: Type.Optional(ContentStatus),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'full-text search over title and keywords (prefix match)',
      }),
    ),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const isoOrNull = (v: string | null | undefined) =>
  v === undefined || v === null ? v : new Date(v).toISOString();

export const contentsRoutes: FastifyPluginAsyncTypebox<Pick<DomainServices, 'contents'>> = async (
  app,
  { contents },
) => {
  const tags = ['contents'];
  app.post(
    '/campaigns/:id/contents',
    {
      schema: {
        tags,
        params: IdParams,
        body: ContentBody,
        response: { 201: ContentSchema, ...errorResponses(400, 404) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const created = await contents.create(req.params.id, {
        ...b,
        publish_at: isoOrNull(b.publish_at),
        published_at: isoOrNull(b.published_at),
      });
      return reply.status(201).send(created);
    },
  );
  app.get(
    '/campaigns/:id/contents',
    {
      schema: {
        tags,
        description:
          'Contents of a campaign, newest first, optionally filtered by status and searched by title/keywords.',
        params: IdParams,
        querystring: ListQuery,
        response: { 200: page(ContentSchema), ...errorResponses(400, 404) },
      },
    },
    async (req) => {
      const { status, q, limit, cursor } = req.query;
      return contents.list(req.params.id, { status, q }, { limit, cursor });
    },
  );
  app.get(
    '/contents/:id',
    { schema: { tags, params: IdParams, response: { 200: ContentSchema, ...errorResponses(404) } } },
    async (req) => contents.get(req.params.id),
  );
  app.patch(
    '/contents/:id',
    {
      schema: {
        tags,
        params: IdParams,
        body: ContentPatch,
        response: { 200: ContentSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => {
      const b = req.body;
      return contents.update(req.params.id, {
        ...b,
        ...(b.publish_at !== undefined ? { publish_at: isoOrNull(b.publish_at) } : {}),
        ...(b.published_at !== undefined ? { published_at: isoOrNull(b.published_at) } : {}),
      });
    },
  );
  app.delete(
    '/contents/:id',
    { schema: { tags, params: IdParams, response: { 204: Type.Null(), ...errorResponses(404) } } },
    async (req, reply) => {
      await contents.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
};

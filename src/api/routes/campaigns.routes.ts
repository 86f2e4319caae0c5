import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { DomainServices } from '../../domain/services.js';
import {
  CampaignSchema,
  CampaignStatus,
  Cursor,
  DateOnly,
  DateTime,
  Id,
  IdParams,
  Limit,
  Name,
  Nullable,
  Platform,
  Text,
  errorResponses,
  page,
} from '../schemas.js';

const CampaignFields = {
  name: Name,
  platform: Platform,
  description: Type.Optional(Nullable(Text(5000))),
  status: Type.Optional(CampaignStatus),
  concept_tone: Type.Optional(Nullable(Text(100))),
  concept_style: Type.Optional(Nullable(Text(100))),
  voice: Type.Optional(Nullable(Text(100))),
  language: Type.Optional(
    Type.String({ pattern: '^[a-z]{2}(-[A-Z]{2})?$', description: 'BCP 47, e.g. ko or en-US' }),
  ),
  target_duration_s: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 86_400 }))),
  start_date: Type.Optional(Nullable(DateOnly)),
  end_date: Type.Optional(Nullable(DateOnly)),
};
const CampaignBody = Type.Object({ client_id: Id, ...CampaignFields }, { additionalProperties: false });
const CampaignPatch = Type.Partial(Type.Object(CampaignFields), {
  additionalProperties: false,
  minProperties: 1,
});

const ListQuery = Type.Object(
  {
    client_id: Type.Optional(Id),
    status: Type.Optional(CampaignStatus),
    platform: Type.Optional(Platform),
    created_from: Type.Optional(DateTime),
    created_to: Type.Optional(DateTime),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

const iso = (v: string | undefined) => (v === undefined ? undefined : new Date(v).toISOString());

export const campaignsRoutes: FastifyPluginAsyncTypebox<Pick<DomainServices, 'campaigns'>> = async (
  app,
  { campaigns },
) => {
  const tags = ['campaigns'];
  app.post(
    '/campaigns',
    { schema: { tags, body: CampaignBody, response: { 201: CampaignSchema, ...errorResponses(400, 422) } } },
    async (req, reply) => reply.status(201).send(await campaigns.create(req.body)),
  );
  app.get(
    '/campaigns',
    {
      schema: {
        tags,
        description:
          'Newest first; filter by client, status, platform and a created-at range [created_from, created_to).',
        querystring: ListQuery,
        response: { 200: page(CampaignSchema), ...errorResponses(400) },
      },
    },
    async (req) => {
      const q = req.query;
      return campaigns.list(
        {
          clientId: q.client_id,
          status: q.status,
          platform: q.platform,
          createdFrom: iso(q.created_from),
          createdTo: iso(q.created_to),
        },
        { limit: q.limit, cursor: q.cursor },
      );
    },
  );
  app.get(
    '/campaigns/:id',
    { schema: { tags, params: IdParams, response: { 200: CampaignSchema, ...errorResponses(404) } } },
    async (req) => campaigns.get(req.params.id),
  );
  app.patch(
    '/campaigns/:id',
    {
      schema: {
        tags,
        params: IdParams,
        body: CampaignPatch,
        response: { 200: CampaignSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => campaigns.update(req.params.id, req.body),
  );
  app.delete(
    '/campaigns/:id',
    { schema: { tags, params: IdParams, response: { 204: Type.Null(), ...errorResponses(404) } } },
    async (req, reply) => {
      await campaigns.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
};

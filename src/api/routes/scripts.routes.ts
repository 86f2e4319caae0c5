import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { MAX_BLOCKS } from '../../domain/scripts.service.js';
import type { DomainServices } from '../../domain/services.js';
import {
  BlockKind,
  Id,
  IdParams,
  Nullable,
  Platform,
  ScriptBlockSchema,
  ScriptSchema,
  Text,
  errorResponses,
} from '../schemas.js';

const BlockFields = {
  kind: BlockKind,
  text: Text(5000, 1),
  subtitle_text: Type.Optional(Nullable(Text(5000))),
  duration_s: Type.Optional(Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 3600 }))),
  background: Type.Optional(Nullable(Text(500))),
  transition: Type.Optional(Nullable(Text(50))),
};
const BlockBody = Type.Object(BlockFields, { additionalProperties: false });
const BlockPatch = Type.Partial(BlockBody, { additionalProperties: false, minProperties: 1 });
const BlockParams = Type.Object({ id: Id, blockId: Id }, { additionalProperties: false });

const SimilarSchema = Type.Object({
  content_id: Id,
  campaign_id: Id,
  title: Type.String(),
  platform: Platform,
  concept_tone: Nullable(Type.String()),
  performance_score: Type.Number(),
  relevance: Nullable(
    Type.Number({
      minimum: 0,
      maximum: 100,
      description:
        'With q: 0–100 relative to the best match of the same query (100); 50 is half as relevant by the full-text ranking (BM25 on SQLite, ts_rank on PostgreSQL). Null without q.',
    }),
  ),
  excerpt: Type.String(),
});

export const scriptsRoutes: FastifyPluginAsyncTypebox<Pick<DomainServices, 'scripts'>> = async (
  app,
  { scripts },
) => {
  const tags = ['scripts'];
  app.get(
    '/contents/:id/script',
    {
      schema: {
        tags,
        description: 'Blocks in order, the full text and the total duration.',
        params: IdParams,
        response: { 200: ScriptSchema, ...errorResponses(404) },
      },
    },
    async (req) => scripts.get(req.params.id),
  );
  app.put(
    '/contents/:id/script',
    {
      schema: {
        tags,
        description: 'Replaces every block atomically; sequence follows the array order from 1.',
        params: IdParams,
        body: Type.Object(
          { blocks: Type.Array(BlockBody, { maxItems: MAX_BLOCKS }) },
          { additionalProperties: false },
        ),
        response: { 200: ScriptSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => scripts.replace(req.params.id, req.body.blocks),
  );
  app.patch(
    '/contents/:id/script/blocks/:blockId',
    {
      schema: {
        tags,
        params: BlockParams,
        body: BlockPatch,
        response: { 200: ScriptBlockSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => scripts.updateBlock(req.params.id, req.params.blockId, req.body),
  );
  app.post(
    '/contents/:id/script/reorder',
    {
      schema: {
        tags,
        description: 'Sets the block order; block_ids must list every block exactly once.',
        params: IdParams,
        body: Type.Object(
          { block_ids: Type.Array(Id, { minItems: 1, maxItems: MAX_BLOCKS }) },
          { additionalProperties: false },
        ),
        response: { 200: ScriptSchema, ...errorResponses(400, 404) },
      },
    },
    async (req) => scripts.reorder(req.params.id, req.body.block_ids),
  );
  app.get(
    '/scripts/similar',
    {
      schema: {
        tags,
        description:
          'Best-performing scripts on a platform (latest performance_score), optionally filtered by campaign tone and ranked by full-text relevance to q.',
        querystring: Type.Object(
          {
            platform: Platform,
            tone: Type.Optional(Text(100, 1)),
            q: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(SimilarSchema) }), ...errorResponses(400) },
      },
    },
    async (req) => ({ items: await scripts.similar({ ...req.query, limit: req.query.limit ?? 10 }) }),
  );
};

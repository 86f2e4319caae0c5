import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { gens } from '../../domain-cache/generations.js';
import { namespacedKey, namespacedPattern } from '../../cache/cache-key.js';
import type { CacheService } from '../../cache/cache.service.js';
import { PREFIX_RE } from '../../config/cache.js';
import { AppError, validationFailed } from '../../errors.js';
import { Id, Nullable, errorResponses } from '../schemas.js';

const Count = Type.Integer({ minimum: 0 });
const Rate = Nullable(Type.Number({ minimum: 0, maximum: 1 }));
const PrefixStatsSchema = Type.Object({
  hits: Count,
  l1_hits: Count,
  misses: Count,
  hit_rate: Rate,
  stale_served: Count,
  sets: Count,
  errors: Count,
  bypassed: Count,
  coalesced: Count,
  get_p50_us: Nullable(Type.Number()),
  get_p99_us: Nullable(Type.Number()),
});

const StatsSchema = Type.Object({
  backend: Type.String({ enum: ['memory', 'redis'] }),
  keyspace_scope: Type.String({
    enum: ['redis_server', 'process'],
    description:
      'keyspace_hits, keyspace_misses, hit_rate and total_keys are Redis INFO figures for the whole server (redis_server), or this process’s own counters (process)',
  }),
  keyspace_hits: Count,
  keyspace_misses: Count,
  hit_rate: Rate,
  total_keys: Count,
  namespace: Type.String(),
  namespace_keys: Nullable(Count),
  circuit: Type.String({ enum: ['closed', 'open', 'half_open'] }),
  circuit_opened: Count,
  pending_invalidations: Count,
  unpublished_invalidations: Count,
  errors: Count,
  last_error: Nullable(Type.String()),
  totals: PrefixStatsSchema,
  prefixes: Type.Record(Type.String(), PrefixStatsSchema),
  l1: Type.Object({
    enabled: Type.Boolean(),
    connected: Type.Boolean(),
    entries: Count,
    max_entries: Count,
    hits: Count,
    misses: Count,
    evictions: Count,
    bus_messages: Count,
  }),
});

const InvalidateBody = Type.Object(
  {
    campaign_id: Type.Optional(Id),
    content_id: Type.Optional(Id),
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: PREFIX_RE.source })),
    pattern: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          'a Redis glob inside the cache namespace, e.g. `script:*` (letters, digits, _ : - . * ? [ ] ^)',
      }),
    ),
  },
  { additionalProperties: false },
);

const InvalidateResult = Type.Object({
  target: Type.String({ enum: ['campaign_id', 'content_id', 'prefix', 'pattern'] }),
  removed: Type.Union([Count, Type.Null()], {
    description:
      'entries deleted (prefix, pattern); null for campaign_id and content_id, which move generation counters in O(1): their entries become unreachable and expire on their own',
  }),
  generations: Type.Array(Type.String()),
});

/** Cache management; every route needs the admin role. */
export const cacheRoutes: FastifyPluginAsyncTypebox<{ cache: CacheService }> = async (app, { cache }) => {
  const tags = ['cache'];
  const config = { auth: 'admin' as const };

  app.get(
    '/cache/stats',
    {
      config,
      schema: {
        tags,
        description:
          'Redis keyspace figures (server-wide, see keyspace_scope) and our own per-prefix hits, misses, errors and get latency, L1 and circuit state.',
        response: { 200: StatsSchema },
      },
    },
    async () => cache.stats(),
  );

  app.post(
    '/cache/invalidate',
    {
      config,
      schema: {
        tags,
        description: 'Invalidates by exactly one of campaign_id, content_id, prefix, pattern.',
        body: InvalidateBody,
        response: { 200: InvalidateResult, ...errorResponses(400, 503) },
      },
    },
    async (req) => {
      const given = (['campaign_id', 'content_id', 'prefix', 'pattern'] as const).filter(
        (f) => req.body[f] !== undefined,
      );
      if (given.length !== 1) {
        throw new AppError(
          'VALIDATION_FAILED',
          'give exactly one of campaign_id, content_id, prefix, pattern',
          {
            field: 'body',
            given,
          },
        );
      }
      const { campaign_id, content_id, prefix, pattern } = req.body;
      if (campaign_id !== undefined) {
        const names = [
          gens.campaign(campaign_id),
          gens.campaigns,
          gens.similar,
          gens.campaignStats(campaign_id),
        ];
        await cache.invalidate(...names);
        return { target: 'campaign_id', removed: null, generations: names };
      }
      if (content_id !== undefined) {
        const names = [gens.content(content_id), gens.similar];
        await cache.invalidate(...names);
        return { target: 'content_id', removed: null, generations: names };
      }
      if (prefix !== undefined) {
        return {
          target: 'prefix',
          removed: await storeCall(() => cache.deletePrefix(prefix)),
          generations: [],
        };
      }
      const p = pattern as string;
      if (namespacedPattern(p) === null)
        throw validationFailed('pattern', 'letters, digits and _ : - . * ? [ ] ^ only');
      return { target: 'pattern', removed: await storeCall(() => cache.deletePattern(p)), generations: [] };
    },
  );

  app.post(
    '/cache/flush',
    {
      config,
      schema: {
        tags,
        description:
          'Removes the cache namespace (ov:cache:v1:*) by incremental SCAN and UNLINK in batches; nothing else in that Redis.',
        response: { 200: Type.Object({ removed: Count }), ...errorResponses(503) },
      },
    },
    async () => ({ removed: await storeCall(() => cache.flush()) }),
  );

  app.delete(
    '/cache/:key',
    {
      config,
      schema: {
        tags,
        description: 'Deletes one cache key (`script:<hash>` or the full `ov:cache:v1:script:<hash>`).',
        params: Type.Object(
          { key: Type.String({ minLength: 1, maxLength: 320 }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ key: Type.String(), deleted: Type.Boolean() }),
          ...errorResponses(400, 404, 503),
        },
      },
    },
    async (req) => {
      const key = namespacedKey(req.params.key);
      if (key === null)
        throw validationFailed('key', 'letters, digits and _ : - . only, inside the cache namespace');
      if (!(await storeCall(() => cache.deleteKey(key)))) {
        throw new AppError('CACHE_KEY_NOT_FOUND', `cache key ${key} does not exist`, { key });
      }
      return { key, deleted: true };
    },
  );
};

/** Management calls report a store outage as 503 (reads fail open; an operator's request should say it did nothing). */
async function storeCall<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof TypeError) throw validationFailed('body', err.message);
    throw new AppError(
      'CACHE_UNAVAILABLE',
      'the cache store is unavailable; retry shortly',
      {
        reason: err instanceof Error ? err.message : String(err),
      },
      2,
    );
  }
}

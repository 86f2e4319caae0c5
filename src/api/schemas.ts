import { type Static, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';
import { BLOCK_KINDS, CAMPAIGN_STATUSES, CONTENT_STATUSES, PLATFORMS, ROLES } from '../db/types.js';
import { MAX_PAGE_LIMIT } from '../db/pagination.js';

/** Shared request and response schemas; they validate requests and produce the OpenAPI document. */

/**
 * `T | null`. Scalars become `type: [T, "null"]` rather than `anyOf`: the response
 * serialiser (fast-json-stringify) has to run a validator per value to pick an
 * `anyOf` branch, which cost list endpoints a large share of their time. Other
 * schemas keep `anyOf`.
 */
export const Nullable = <T extends TSchema>(t: T): TUnsafe<Static<T> | null> => {
  const type = (t as { type?: unknown }).type;
  if (typeof type === 'string' && ['string', 'number', 'integer', 'boolean'].includes(type)) {
    const e = (t as { enum?: unknown[] }).enum;
    return Type.Unsafe<Static<T> | null>({
      ...t,
      type: [type, 'null'],
      ...(e ? { enum: [...e, null] } : {}),
    });
  }
  return Type.Unsafe<Static<T> | null>(Type.Union([t, Type.Null()]));
};
export const StringEnum = <T extends readonly string[]>(values: T, description?: string) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

/** Integer ids fit PostgreSQL's `integer`. */
export const Id = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });

/** Text without NUL characters (PostgreSQL cannot store them). */
export const Text = (maxLength: number, minLength = 0) =>
  Type.String({ minLength, maxLength, pattern: '^[^\\u0000]*$' });
/**
 * A name shown in lists (clients, campaigns, API keys): besides NUL, no character that can make one
 * name pass for another or hide part of it: control characters, format characters (bidirectional
 * overrides and isolates, zero-width spaces and joiners, the byte-order mark, the soft hyphen), line
 * and paragraph separators, and the invisible Hangul fillers.
 */
export const Name = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}\\u115F\\u1160\\u3164\\uFFA0]*$',
  description: 'no control, format (bidirectional, zero-width) or invisible filler characters',
});

export const DateTime = Type.String({ format: 'date-time', description: 'ISO 8601 date-time' });
export const DateOnly = Type.String({ format: 'date', description: 'YYYY-MM-DD' });
export const Timestamp = Type.String({ description: 'ISO 8601 UTC' });

export const Platform = StringEnum(PLATFORMS);
export const CampaignStatus = StringEnum(CAMPAIGN_STATUSES);
export const ContentStatus = StringEnum(CONTENT_STATUSES);
export const BlockKind = StringEnum(BLOCK_KINDS);
export const Role = StringEnum(ROLES);

export const Limit = Type.Integer({ minimum: 1, maximum: MAX_PAGE_LIMIT, default: 20 });
export const Cursor = Type.String({
  minLength: 1,
  maxLength: 200,
  description: 'next_cursor of the previous page',
});

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { $id: 'Error' },
);

export const page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), next_cursor: Nullable(Type.String()) });

const timestamps = { created_at: Timestamp, updated_at: Timestamp };

export const ClientSchema = Type.Object({
  id: Id,
  name: Type.String(),
  brand_color: Nullable(Type.String()),
  industry: Nullable(Type.String()),
  contact_email: Nullable(Type.String()),
  ...timestamps,
});

export const CampaignSchema = Type.Object({
  id: Id,
  client_id: Id,
  name: Type.String(),
  description: Nullable(Type.String()),
  status: CampaignStatus,
  platform: Platform,
  concept_tone: Nullable(Type.String()),
  concept_style: Nullable(Type.String()),
  voice: Nullable(Type.String()),
  language: Type.String(),
  target_duration_s: Nullable(Type.Integer()),
  start_date: Nullable(Type.String()),
  end_date: Nullable(Type.String()),
  ...timestamps,
});

export const ContentSchema = Type.Object({
  id: Id,
  campaign_id: Id,
  title: Type.String(),
  platform: Platform,
  status: ContentStatus,
  keywords: Type.Array(Type.String()),
  publish_at: Nullable(Type.String()),
  published_at: Nullable(Type.String()),
  latest_performance_score: Nullable(Type.Number()),
  latest_recorded_at: Nullable(Type.String()),
  ...timestamps,
});

export const ScriptBlockSchema = Type.Object({
  id: Id,
  content_id: Id,
  sequence: Type.Integer(),
  kind: BlockKind,
  text: Type.String(),
  subtitle_text: Nullable(Type.String()),
  duration_s: Nullable(Type.Number()),
  background: Nullable(Type.String()),
  transition: Nullable(Type.String()),
  ...timestamps,
});

export const ScriptSchema = Type.Object({
  content_id: Id,
  blocks: Type.Array(ScriptBlockSchema),
  full_text: Type.String(),
  total_duration_s: Type.Number(),
  block_count: Type.Integer(),
});

export const MetricSchema = Type.Object({
  id: Id,
  content_id: Id,
  recorded_at: Timestamp,
  views: Type.Integer(),
  likes: Type.Integer(),
  comments: Type.Integer(),
  shares: Type.Integer(),
  watch_time_s: Type.Number(),
  ctr: Type.Number(),
  engagement_rate: Type.Number(),
  performance_score: Type.Number(),
  ...timestamps,
});

export const ApiKeySchema = Type.Object({
  id: Id,
  name: Type.String(),
  role: Role,
  prefix: Type.String(),
  last_used_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
  ...timestamps,
});

/** Standard error responses for the OpenAPI document. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, Type.Ref('Error')]));

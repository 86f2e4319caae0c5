import { type Kysely, sql } from 'kysely';
import type { SchemaHelpers } from './schema-helpers.js';

export const ASSET_KINDS = ['image', 'logo', 'clip', 'audio'] as const;
export const MEDIA_CHOICE_OWNERS = ['client', 'campaign', 'content'] as const;
export const MEDIA_CHOICE_ROLES = ['logo', 'music'] as const;

/**
 * Uploaded media (issue 14) and the narration verifier's honesty (issue 12).
 *
 * - `assets`: one row per client and content hash; the bytes live once per
 *   hash in media storage (`storage_key`), so two clients uploading the same
 *   file share the object and deleting one row keeps it for the other.
 * - `media_choices`: the logo chosen on a client, the music chosen on a
 *   campaign or a content (the content's wins).
 * - `render_assets`: the assets a render reads, recorded when it is queued,
 *   so deleting one while the render is queued or running is refused.
 * - `renders.options` (JSON of the render request), `renders.captions_srt_path`
 *   and `captions_vtt_path` (caption files beside the MP4).
 * - `audio_generations.verifier` (which verifier ran) and `score` (its 0..1
 *   verdict, used against the threshold); `similarity` now holds only a word
 *   similarity that was measured (speech-to-text), else null.
 */
export async function up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  await h
    .table(db, 'assets')
    .addColumn('client_id', 'integer', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('mime', 'text', (c) => c.notNull())
    .addColumn('width', 'integer')
    .addColumn('height', 'integer')
    .addColumn('duration_s', h.float)
    .addColumn('has_alpha', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('storage_key', 'text', (c) => c.notNull())
    .addColumn('original_name', 'text')
    .addCheckConstraint('assets_kind_check', h.oneOf('kind', ASSET_KINDS))
    .addUniqueConstraint('assets_client_sha256_unique', ['client_id', 'sha256'])
    .execute();
  await sql`create index if not exists idx_assets_sha256 on assets (sha256)`.execute(db);

  await h
    .table(db, 'media_choices')
    .addColumn('owner_kind', 'text', (c) => c.notNull())
    .addColumn('owner_id', 'integer', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('asset_id', 'integer', (c) => c.notNull().references('assets.id').onDelete('cascade'))
    .addCheckConstraint('media_choices_owner_check', h.oneOf('owner_kind', MEDIA_CHOICE_OWNERS))
    .addCheckConstraint('media_choices_role_check', h.oneOf('role', MEDIA_CHOICE_ROLES))
    .addUniqueConstraint('media_choices_owner_role_unique', ['owner_kind', 'owner_id', 'role'])
    .execute();

  await db.schema
    .createTable('render_assets')
    .ifNotExists()
    .addColumn('render_id', 'integer', (c) => c.notNull().references('renders.id').onDelete('cascade'))
    .addColumn('asset_id', 'integer', (c) => c.notNull().references('assets.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('render_assets_pk', ['render_id', 'asset_id'])
    .execute();
  await sql`create index if not exists idx_render_assets_asset on render_assets (asset_id)`.execute(db);

  await db.schema.alterTable('renders').addColumn('options', 'text').execute();
  await db.schema.alterTable('renders').addColumn('captions_srt_path', 'text').execute();
  await db.schema.alterTable('renders').addColumn('captions_vtt_path', 'text').execute();
  await db.schema.alterTable('audio_generations').addColumn('verifier', 'text').execute();
  await db.schema.alterTable('audio_generations').addColumn('score', h.float).execute();
}

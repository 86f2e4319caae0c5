import { type Kysely, sql } from 'kysely';
import {
  BLOCK_KINDS,
  CAMPAIGN_STATUSES,
  CONTENT_STATUSES,
  JOB_STATUSES,
  PLATFORMS,
  RENDER_STATUSES,
  ROLES,
  TASK_RUN_STATUSES,
} from '../types.js';
import type { SchemaHelpers } from './schema-helpers.js';

/** Every table of DESIGN.md, with database-checked enums, foreign keys and the named indexes. */
export async function up(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  await h
    .table(db, 'clients')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('brand_color', 'text')
    .addColumn('industry', 'text')
    .addColumn('contact_email', 'text')
    .execute();

  await h
    .table(db, 'campaigns')
    .addColumn('client_id', 'integer', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('concept_tone', 'text')
    .addColumn('concept_style', 'text')
    .addColumn('voice', 'text')
    .addColumn('language', 'text', (c) => c.notNull().defaultTo('ko'))
    .addColumn('target_duration_s', 'integer')
    .addColumn('start_date', h.date)
    .addColumn('end_date', h.date)
    .addCheckConstraint('campaigns_status_check', h.oneOf('status', CAMPAIGN_STATUSES))
    .addCheckConstraint('campaigns_platform_check', h.oneOf('platform', PLATFORMS))
    .addCheckConstraint(
      'campaigns_dates_check',
      sql`end_date is null or start_date is null or end_date >= start_date`,
    )
    .execute();

  await h
    .table(db, 'contents')
    .addColumn('campaign_id', 'integer', (c) => c.notNull().references('campaigns.id').onDelete('cascade'))
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('draft'))
    .addColumn('keywords', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('publish_at', h.timestamp)
    .addColumn('published_at', h.timestamp)
    .addColumn('latest_performance_score', h.float)
    .addColumn('latest_recorded_at', h.timestamp)
    .addCheckConstraint('contents_status_check', h.oneOf('status', CONTENT_STATUSES))
    .addCheckConstraint('contents_platform_check', h.oneOf('platform', PLATFORMS))
    .execute();

  await h
    .table(db, 'script_blocks')
    .addColumn('content_id', 'integer', (c) => c.notNull().references('contents.id').onDelete('cascade'))
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('subtitle_text', 'text')
    .addColumn('duration_s', h.float)
    .addColumn('background', 'text')
    .addColumn('transition', 'text')
    .addCheckConstraint('script_blocks_kind_check', h.oneOf('kind', BLOCK_KINDS))
    .addCheckConstraint('script_blocks_sequence_check', sql`sequence >= 0`)
    .execute();

  await db.schema
    .createTable('script_documents')
    .ifNotExists()
    .addColumn('content_id', 'integer', (c) => c.primaryKey().references('contents.id').onDelete('cascade'))
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('updated_at', h.timestamp, (c) => c.notNull().defaultTo(h.now))
    .execute();

  await h
    .table(db, 'audio_generations')
    .addColumn('content_id', 'integer', (c) => c.notNull().references('contents.id').onDelete('cascade'))
    .addColumn('task_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('voice', 'text')
    .addColumn('language', 'text', (c) => c.notNull().defaultTo('ko'))
    .addColumn('text_hash', 'text')
    .addColumn('audio_path', 'text')
    .addColumn('duration_s', h.float)
    .addColumn('similarity', h.float)
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('cost_usd', h.float, (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('finished_at', h.timestamp)
    .addCheckConstraint('audio_generations_status_check', h.oneOf('status', JOB_STATUSES))
    .execute();

  await h
    .table(db, 'renders')
    .addColumn('content_id', 'integer', (c) => c.notNull().references('contents.id').onDelete('cascade'))
    .addColumn('task_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
    .addColumn('preset', 'text', (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('fps', 'integer', (c) => c.notNull().defaultTo(30))
    .addColumn('output_path', 'text')
    .addColumn('thumbnail_path', 'text')
    .addColumn('duration_s', h.float)
    .addColumn('size_bytes', 'bigint')
    .addColumn('error', 'text')
    .addColumn('finished_at', h.timestamp)
    .addCheckConstraint('renders_status_check', h.oneOf('status', RENDER_STATUSES))
    .addCheckConstraint('renders_preset_check', h.oneOf('preset', PLATFORMS))
    .execute();

  await h
    .table(db, 'performance_metrics')
    .addColumn('content_id', 'integer', (c) => c.notNull().references('contents.id').onDelete('cascade'))
    .addColumn('recorded_at', h.timestamp, (c) => c.notNull())
    .addColumn('views', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('likes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('comments', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('shares', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('watch_time_s', h.float, (c) => c.notNull().defaultTo(0))
    .addColumn('ctr', h.float, (c) => c.notNull().defaultTo(0))
    .addColumn('engagement_rate', h.float, (c) => c.notNull().defaultTo(0))
    .addColumn('performance_score', h.float, (c) => c.notNull().defaultTo(0))
    .addCheckConstraint(
      'performance_metrics_counts_check',
      sql`views >= 0 and likes >= 0 and comments >= 0 and shares >= 0 and watch_time_s >= 0 and ctr >= 0 and ctr <= 1`,
    )
    .execute();

  await h
    .table(db, 'ai_api_usage')
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('model', 'text')
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('units', h.float, (c) => c.notNull())
    .addColumn('unit', 'text', (c) => c.notNull())
    .addColumn('cost_usd', h.float, (c) => c.notNull().defaultTo(0))
    .addColumn('campaign_id', 'integer', (c) => c.references('campaigns.id').onDelete('set null'))
    .addColumn('content_id', 'integer', (c) => c.references('contents.id').onDelete('set null'))
    .addColumn('task_id', 'text')
    .execute();

  await h
    .table(db, 'task_runs')
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('enqueued_at', h.timestamp)
    .addColumn('started_at', h.timestamp)
    .addColumn('finished_at', h.timestamp)
    .addColumn('wait_ms', h.float)
    .addColumn('run_ms', h.float)
    .addColumn('worker', 'text')
    .addColumn('error', 'text')
    .addColumn('trace_id', 'text')
    .addCheckConstraint('task_runs_status_check', h.oneOf('status', TASK_RUN_STATUSES))
    .execute();

  await h
    .table(db, 'api_keys')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('last_used_at', h.timestamp)
    .addColumn('revoked_at', h.timestamp)
    .addCheckConstraint('api_keys_role_check', h.oneOf('role', ROLES))
    .execute();

  const index = (name: string, table: string, columns: string, unique = false) =>
    sql`create ${sql.raw(unique ? 'unique ' : '')}index if not exists ${sql.ref(name)} on ${sql.table(table)} (${sql.raw(columns)})`.execute(
      db,
    );

  // The named indexes of DESIGN.md (drop none of these).
  await index('idx_campaigns_client_id', 'campaigns', 'client_id');
  await index('idx_campaigns_status', 'campaigns', 'status');
  await index('idx_campaigns_platform', 'campaigns', 'platform');
  await index('idx_campaigns_created_at', 'campaigns', 'created_at desc');
  await index('idx_contents_campaign_id', 'contents', 'campaign_id');
  await index('idx_contents_status', 'contents', 'status');
  await index('idx_contents_created_at', 'contents', 'created_at desc');
  await index('idx_contents_published_at', 'contents', 'published_at desc');
  await index('idx_contents_campaign_status', 'contents', 'campaign_id, status');
  await index('idx_script_blocks_content_id', 'script_blocks', 'content_id');
  // Unique: it is also the "sequence unique per content" constraint.
  await index('idx_script_blocks_sequence', 'script_blocks', 'content_id, sequence', true);
  await index('idx_audio_generations_content_id', 'audio_generations', 'content_id');
  await index('idx_audio_generations_task_id', 'audio_generations', 'task_id');
  await index('idx_audio_generations_status', 'audio_generations', 'status');
  await index('idx_audio_generations_created_at', 'audio_generations', 'created_at desc');
  await index('idx_performance_content_id', 'performance_metrics', 'content_id, recorded_at desc');
  await index('idx_performance_recorded_at', 'performance_metrics', 'recorded_at desc');

  // Indexes the queries of this codebase need beyond the named set.
  await index('idx_contents_platform_score', 'contents', 'platform, latest_performance_score desc');
  await index('idx_renders_content_id', 'renders', 'content_id');
  await index('idx_renders_task_id', 'renders', 'task_id');
  await index('idx_ai_api_usage_created_at', 'ai_api_usage', 'created_at');
  await index('idx_ai_api_usage_campaign_id', 'ai_api_usage', 'campaign_id');
  await index('idx_ai_api_usage_content_id', 'ai_api_usage', 'content_id');
  await index('idx_task_runs_task_id', 'task_runs', 'task_id');
  await index('idx_task_runs_created_at', 'task_runs', 'created_at');
  await index('idx_api_keys_prefix', 'api_keys', 'prefix');
  await index('idx_api_keys_key_hash', 'api_keys', 'key_hash', true);

  await createFullTextIndexes(db, h);
}

/** Full-text search over content titles/keywords and script text, with each dialect's own engine. */
async function createFullTextIndexes(db: Kysely<unknown>, h: SchemaHelpers): Promise<void> {
  if (h.dialect === 'sqlite') {
    const statements = [
      `create virtual table if not exists contents_fts using fts5(title, keywords, content='contents', content_rowid='id', tokenize='unicode61 remove_diacritics 2')`,
      `create trigger if not exists contents_fts_ai after insert on contents begin
         insert into contents_fts(rowid, title, keywords) values (new.id, new.title, new.keywords); end`,
      `create trigger if not exists contents_fts_ad after delete on contents begin
         insert into contents_fts(contents_fts, rowid, title, keywords) values ('delete', old.id, old.title, old.keywords); end`,
      `create trigger if not exists contents_fts_au after update of title, keywords on contents begin
         insert into contents_fts(contents_fts, rowid, title, keywords) values ('delete', old.id, old.title, old.keywords);
         insert into contents_fts(rowid, title, keywords) values (new.id, new.title, new.keywords); end`,
      `create virtual table if not exists script_fts using fts5(body, content='script_documents', content_rowid='content_id', tokenize='unicode61 remove_diacritics 2')`,
      `create trigger if not exists script_fts_ai after insert on script_documents begin
         insert into script_fts(rowid, body) values (new.content_id, new.body); end`,
      `create trigger if not exists script_fts_ad after delete on script_documents begin
         insert into script_fts(script_fts, rowid, body) values ('delete', old.content_id, old.body); end`,
      `create trigger if not exists script_fts_au after update of body on script_documents begin
         insert into script_fts(script_fts, rowid, body) values ('delete', old.content_id, old.body);
         insert into script_fts(rowid, body) values (new.content_id, new.body); end`,
    ];
    for (const s of statements) await sql.raw(s).execute(db);
    return;
  }
  await sql`alter table contents add column if not exists search_tsv tsvector generated always as (to_tsvector('simple', title || ' ' || keywords)) stored`.execute(
    db,
  );
  await sql`create index if not exists idx_contents_search on contents using gin (search_tsv)`.execute(db);
  await sql`alter table script_documents add column if not exists body_tsv tsvector generated always as (to_tsvector('simple', body)) stored`.execute(
    db,
  );
  await sql`create index if not exists idx_script_documents_search on script_documents using gin (body_tsv)`.execute(
    db,
  );
}

import type { ColumnType, Generated, Insertable, Kysely, Selectable, Updateable } from 'kysely';

/** ISO 8601 UTC timestamp string, the same on both dialects (pg type parsers normalise it). */
type Timestamp = ColumnType<string, string | undefined, string>;
type Id = Generated<number>;

export const CAMPAIGN_STATUSES = ['active', 'paused', 'completed', 'archived'] as const;
export const PLATFORMS = ['youtube', 'instagram', 'tiktok', 'facebook'] as const;
export const CONTENT_STATUSES = [
  'draft',
  'scripted',
  'audio_ready',
  'rendered',
  'scheduled',
  'published',
  'archived',
] as const;
export const BLOCK_KINDS = ['hook', 'intro', 'body', 'cta', 'outro'] as const;
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'partial', 'failed'] as const;
export const RENDER_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export const TASK_RUN_STATUSES = ['running', 'succeeded', 'failed', 'retrying', 'cancelled'] as const;
export const ROLES = ['admin', 'editor', 'viewer'] as const;

export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];
export type Platform = (typeof PLATFORMS)[number];
export type ContentStatus = (typeof CONTENT_STATUSES)[number];
export type BlockKind = (typeof BLOCK_KINDS)[number];
export type Role = (typeof ROLES)[number];

interface Timestamps {
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ClientsTable extends Timestamps {
  id: Id;
  name: string;
  brand_color: string | null;
  industry: string | null;
  contact_email: string | null;
}

export interface CampaignsTable extends Timestamps {
  id: Id;
  client_id: number;
  name: string;
  description: string | null;
  status: CampaignStatus;
  platform: Platform;
  concept_tone: string | null;
  concept_style: string | null;
  voice: string | null;
  language: string;
  target_duration_s: number | null;
  start_date: string | null;
  end_date: string | null;
}

export interface ContentsTable extends Timestamps {
  id: Id;
  campaign_id: number;
  title: string;
  platform: Platform;
  status: ContentStatus;
  /** JSON array of strings. */
  keywords: string;
  publish_at: string | null;
  published_at: string | null;
  /** Denormalised from the newest performance_metrics row, for ranking without a per-row subquery. */
  latest_performance_score: number | null;
  latest_recorded_at: string | null;
}

export interface ScriptBlocksTable extends Timestamps {
  id: Id;
  content_id: number;
  sequence: number;
  kind: BlockKind;
  text: string;
  subtitle_text: string | null;
  duration_s: number | null;
  background: string | null;
  transition: string | null;
}

/** One row per content: the script's full text, indexed by the dialect's full-text engine. */
export interface ScriptDocumentsTable {
  content_id: number;
  body: string;
  updated_at: Timestamp;
}

export interface AudioGenerationsTable extends Timestamps {
  id: Id;
  content_id: number;
  task_id: string | null;
  status: (typeof JOB_STATUSES)[number];
  provider: string;
  voice: string | null;
  language: string;
  text_hash: string | null;
  audio_path: string | null;
  duration_s: number | null;
  /** A word similarity that was measured (speech-to-text); null when the verifier cannot hear words. */
  similarity: number | null;
  /** The verifier that ran: `openai` (speech-to-text) or `acoustic` (duration, silence, clipping). */
  verifier: string | null;
  /** The verifier's 0..1 verdict, compared with the threshold. */
  score: number | null;
  attempts: number;
  cost_usd: number;
  error: string | null;
  finished_at: string | null;
}

export interface RendersTable extends Timestamps {
  id: Id;
  content_id: number;
  task_id: string | null;
  status: (typeof RENDER_STATUSES)[number];
  preset: Platform;
  width: number;
  height: number;
  fps: number;
  output_path: string | null;
  thumbnail_path: string | null;
  duration_s: number | null;
  size_bytes: number | null;
  error: string | null;
  finished_at: string | null;
  /** The render request's options, JSON (see src/media/render/render-options.ts). */
  options: string | null;
  captions_srt_path: string | null;
  captions_vtt_path: string | null;
}

export type AssetKind = 'image' | 'logo' | 'clip' | 'audio';

export interface AssetsTable extends Timestamps {
  id: Id;
  client_id: number;
  kind: AssetKind;
  mime: string;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  /** 0 or 1. */
  has_alpha: number;
  size_bytes: number;
  sha256: string;
  /** Key in media storage; one object per sha256, shared by every row with that hash. */
  storage_key: string;
  original_name: string | null;
}

export interface MediaChoicesTable extends Timestamps {
  id: Id;
  owner_kind: 'client' | 'campaign' | 'content';
  owner_id: number;
  role: 'logo' | 'music';
  asset_id: number;
}

export interface RenderAssetsTable {
  render_id: number;
  asset_id: number;
}

export interface PerformanceMetricsTable extends Timestamps {
  id: Id;
  content_id: number;
  recorded_at: string;
  views: number;
  likes: number;
  comments: number;
  shares: number;
  watch_time_s: number;
  ctr: number;
  engagement_rate: number;
  performance_score: number;
}

export interface AiApiUsageTable extends Timestamps {
  id: Id;
  provider: string;
  model: string | null;
  operation: string;
  units: number;
  unit: string;
  cost_usd: number;
  campaign_id: number | null;
  content_id: number | null;
  task_id: string | null;
}

export interface TaskRunsTable extends Timestamps {
  id: Id;
  task_id: string;
  queue: string;
  name: string;
  attempt: number;
  status: (typeof TASK_RUN_STATUSES)[number];
  enqueued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  wait_ms: number | null;
  run_ms: number | null;
  worker: string | null;
  error: string | null;
  trace_id: string | null;
  /** The attempt's identity (runKey in jobs/task-runs.ts); null on rows written before migration 0005. */
  run_key: string | null;
}

export interface ApiKeysTable extends Timestamps {
  id: Id;
  name: string;
  role: Role;
  key_hash: string;
  prefix: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface TelemetrySamplesTable {
  id: Generated<number>;
  /** The process that measured (host:pid:random). */
  process: string;
  /** api, worker or all (`omnivibe start`). */
  role: string;
  start_ms: number;
  end_ms: number;
  /** A LiveInterval as JSON (src/telemetry/live-recorder.ts). */
  figures: string;
}

export const ALERT_STATES = ['firing', 'resolved'] as const;

export interface AlertsTable extends Timestamps {
  id: Id;
  rule: string;
  severity: string;
  state: (typeof ALERT_STATES)[number];
  /** What the rule is about (a queue, a route, or the whole service). */
  subject: string;
  value: number | null;
  threshold: number;
  started_at: string;
  resolved_at: string | null;
  last_notified_at: string | null;
  /** JSON array of each notification's channel, time and result. */
  notifications: string;
}

/** A lease on one sha256's asset rows and object (SQLite only; see AssetsRepo.withShaLock). */
export interface AssetLocksTable {
  sha256: string;
  holder: string;
  expires_ms: number;
}

export interface TelemetryLeasesTable {
  name: string;
  holder: string;
  expires_ms: number;
}

export interface Database {
  clients: ClientsTable;
  campaigns: CampaignsTable;
  contents: ContentsTable;
  script_blocks: ScriptBlocksTable;
  script_documents: ScriptDocumentsTable;
  audio_generations: AudioGenerationsTable;
  renders: RendersTable;
  assets: AssetsTable;
  media_choices: MediaChoicesTable;
  render_assets: RenderAssetsTable;
  performance_metrics: PerformanceMetricsTable;
  ai_api_usage: AiApiUsageTable;
  task_runs: TaskRunsTable;
  api_keys: ApiKeysTable;
  telemetry_samples: TelemetrySamplesTable;
  alerts: AlertsTable;
  telemetry_leases: TelemetryLeasesTable;
  asset_locks: AssetLocksTable;
}

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

export type Client = Selectable<ClientsTable>;
export type NewClient = Insertable<ClientsTable>;
export type ClientUpdate = Updateable<ClientsTable>;
export type Campaign = Selectable<CampaignsTable>;
export type NewCampaign = Insertable<CampaignsTable>;
export type Content = Selectable<ContentsTable>;
export type ScriptBlock = Selectable<ScriptBlocksTable>;
export type PerformanceMetric = Selectable<PerformanceMetricsTable>;
export type ApiKey = Selectable<ApiKeysTable>;

import type { Insertable, Selectable, Updateable } from 'kysely';
import type {
  AiApiUsageTable,
  AudioGenerationsTable,
  ContentStatus,
  Db,
  Platform,
  RendersTable,
  ScriptBlock,
} from '../db/types.js';

export type AudioGeneration = Selectable<AudioGenerationsTable>;
export type Render = Selectable<RendersTable>;
export type AudioGenerationPatch = Omit<
  Updateable<AudioGenerationsTable>,
  'id' | 'content_id' | 'created_at'
>;
export type RenderPatch = Omit<Updateable<RendersTable>, 'id' | 'content_id' | 'created_at'>;

/** A content with what narration and rendering need from its campaign and client. */
export interface ContentContext {
  content_id: number;
  campaign_id: number;
  title: string;
  platform: Platform;
  status: ContentStatus;
  language: string;
  voice: string | null;
  brand_color: string | null;
  blocks: ScriptBlock[];
}

export type UsageRow = Omit<Insertable<AiApiUsageTable>, 'id' | 'created_at' | 'updated_at'>;

/** Content statuses a finished narration or render may advance from (never backwards, never from published). */
const ADVANCE_FROM: Record<'audio_ready' | 'rendered', ContentStatus[]> = {
  audio_ready: ['draft', 'scripted'],
  rendered: ['draft', 'scripted', 'audio_ready'],
};

/** Rows of the media pipeline: audio_generations, renders, ai_api_usage. */
export class MediaRepo {
  constructor(private readonly db: Db) {}

  async contentContext(contentId: number): Promise<ContentContext | undefined> {
    const row = await this.db
      .selectFrom('contents as c')
      .innerJoin('campaigns as g', 'g.id', 'c.campaign_id')
      .innerJoin('clients as k', 'k.id', 'g.client_id')
      .select([
        'c.id as content_id',
        'c.campaign_id',
        'c.title',
        'c.platform',
        'c.status',
        'g.language',
        'g.voice',
        'k.brand_color',
      ])
      .where('c.id', '=', contentId)
      .executeTakeFirst();
    if (!row) return undefined;
    const blocks = await this.db
      .selectFrom('script_blocks')
      .selectAll()
      .where('content_id', '=', contentId)
      .orderBy('sequence')
      .execute();
    return { ...row, blocks };
  }

  async createAudioGeneration(input: {
    content_id: number;
    provider: string;
    voice: string | null;
    language: string;
    text_hash: string | null;
  }): Promise<AudioGeneration> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('audio_generations')
      .values({ ...input, status: 'queued', attempts: 0, cost_usd: 0, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async audioGeneration(id: number): Promise<AudioGeneration | undefined> {
    return this.db.selectFrom('audio_generations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async updateAudioGeneration(id: number, patch: AudioGenerationPatch): Promise<void> {
    await this.db
      .updateTable('audio_generations')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }

  /** The newest succeeded (else partial) narration of a content. */
  async latestGoodAudio(contentId: number): Promise<AudioGeneration | undefined> {
    const rows = await this.db
      .selectFrom('audio_generations')
      .selectAll()
      .where('content_id', '=', contentId)
      .where('status', 'in', ['succeeded', 'partial'])
      .where('audio_path', 'is not', null)
      .orderBy('id', 'desc')
      .limit(20)
      .execute();
    return rows.find((r) => r.status === 'succeeded') ?? rows[0];
  }

  async createRender(input: {
    content_id: number;
    preset: Platform;
    width: number;
    height: number;
    fps: number;
  }): Promise<Render> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('renders')
      .values({ ...input, status: 'queued', created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async render(id: number): Promise<Render | undefined> {
    return this.db.selectFrom('renders').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async updateRender(id: number, patch: RenderPatch): Promise<void> {
    await this.db
      .updateTable('renders')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
  }

  async recordUsage(row: UsageRow): Promise<void> {
    const now = new Date().toISOString();
    await this.db
      .insertInto('ai_api_usage')
      .values({ ...row, created_at: now, updated_at: now })
      .execute();
  }

  async usageFor(contentId: number): Promise<Selectable<AiApiUsageTable>[]> {
    return this.db
      .selectFrom('ai_api_usage')
      .selectAll()
      .where('content_id', '=', contentId)
      .orderBy('id')
      .execute();
  }

  /** Advances a content's status after narration (audio_ready) or a render (rendered); never moves it back. */
  async advanceContentStatus(contentId: number, to: 'audio_ready' | 'rendered'): Promise<void> {
    await this.db
      .updateTable('contents')
      .set({ status: to, updated_at: new Date().toISOString() })
      .where('id', '=', contentId)
      .where('status', 'in', ADVANCE_FROM[to])
      .execute();
  }
}

import { type Insertable, type Selectable, sql, type Updateable } from 'kysely';
import type {
  AiApiUsageTable,
  AudioGenerationsTable,
  ContentStatus,
  Db,
  Dialect,
  Platform,
  RendersTable,
  ScriptBlock,
} from '../db/types.js';
import type { ChangeNotifier } from '../domain/changes.js';

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
  client_id: number;
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
export interface CostFilter {
  /** Inclusive UTC days, YYYY-MM-DD. */
  from?: string;
  to?: string;
  provider?: string;
  operation?: string;
  campaignId?: number;
  contentId?: number;
}

export interface CostGroup {
  key: string;
  cost_usd: number;
  calls: number;
  units: number;
}

export interface CostTotals {
  total_usd: number;
  calls: number;
  by_day: CostGroup[];
  by_provider: CostGroup[];
  by_campaign: CostGroup[];
}

export class MediaRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
    /** Told when a content's status or the vendor spend changes here (outside the domain services). */
    private readonly changes: ChangeNotifier,
  ) {}

  /** This repo over a transaction's connection (AssetsRepo.locked), to write rows in the same step. */
  inTransaction(tx: Db): MediaRepo {
    return new MediaRepo(tx, this.dialect, this.changes);
  }

  /** Vendor spend from ai_api_usage, in total and grouped by UTC day, provider and campaign. */
  async costs(f: CostFilter): Promise<CostTotals> {
    const day =
      this.dialect === 'sqlite'
        ? sql<string>`substr(created_at, 1, 10)`
        : sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')`;
    const base = () => {
      let q = this.db.selectFrom('ai_api_usage');
      if (f.from) q = q.where(day, '>=', f.from);
      if (f.to) q = q.where(day, '<=', f.to);
      if (f.provider) q = q.where('provider', '=', f.provider);
      if (f.operation) q = q.where('operation', '=', f.operation);
      if (f.campaignId !== undefined) q = q.where('campaign_id', '=', f.campaignId);
      if (f.contentId !== undefined) q = q.where('content_id', '=', f.contentId);
      return q;
    };
    const agg = [
      sql<number>`coalesce(sum(cost_usd), 0)`.as('cost_usd'),
      sql<number>`count(*)`.as('calls'),
      sql<number>`coalesce(sum(units), 0)`.as('units'),
    ] as const;
    const toGroups = (
      rows: {
        key: string | number | null;
        cost_usd: number | string;
        calls: number | string;
        units: number | string;
      }[],
    ) =>
      rows.map((r) => ({
        key: r.key === null ? 'none' : String(r.key),
        cost_usd: Math.round(Number(r.cost_usd) * 1e8) / 1e8,
        calls: Number(r.calls),
        units: Math.round(Number(r.units) * 1000) / 1000,
      }));
    const [total, byDay, byProvider, byCampaign] = await Promise.all([
      base().select(agg).executeTakeFirstOrThrow(),
      base()
        .select([day.as('key'), ...agg])
        .groupBy(day)
        .orderBy(day)
        .execute(),
      base()
        .select(['provider as key', ...agg])
        .groupBy('provider')
        .orderBy('provider')
        .execute(),
      base()
        .select(['campaign_id as key', ...agg])
        .groupBy('campaign_id')
        .orderBy('campaign_id')
        .execute(),
    ]);
    return {
      total_usd: Math.round(Number(total.cost_usd) * 1e8) / 1e8,
      calls: Number(total.calls),
      by_day: toGroups(byDay),
      by_provider: toGroups(byProvider),
      by_campaign: toGroups(byCampaign),
    };
  }

  async contentContext(contentId: number): Promise<ContentContext | undefined> {
    const row = await this.db
      .selectFrom('contents as c')
      .innerJoin('campaigns as g', 'g.id', 'c.campaign_id')
      .innerJoin('clients as k', 'k.id', 'g.client_id')
      .select([
        'c.id as content_id',
        'c.campaign_id',
        'g.client_id',
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

  /** Task ids of rows still `queued` or `running` (audio_generations and renders), oldest rows first. */
  async tasksOfUnfinishedRows(limit: number): Promise<string[]> {
    const of = (table: 'audio_generations' | 'renders') =>
      this.db
        .selectFrom(table)
        .select(['task_id', 'created_at'])
        .where('status', 'in', ['queued', 'running'])
        .where('task_id', 'is not', null)
        .orderBy('created_at')
        .limit(limit)
        .execute();
    const rows = [...(await of('audio_generations')), ...(await of('renders'))].sort((a, b) =>
      a.created_at < b.created_at ? -1 : 1,
    );
    return [...new Set(rows.map((r) => r.task_id as string))].slice(0, limit);
  }

  /** Ends the rows of a task that are still `queued` or `running` as failed with `error`; returns how many. */
  async failUnfinishedRowsOfTask(taskId: string, error: string): Promise<number> {
    const now = new Date().toISOString();
    const patch = {
      status: 'failed' as const,
      error: error.slice(0, 8000),
      finished_at: now,
      updated_at: now,
    };
    let changed = 0;
    for (const table of ['audio_generations', 'renders'] as const) {
      const r = await this.db
        .updateTable(table)
        .set(patch)
        .where('task_id', '=', taskId)
        .where('status', 'in', ['queued', 'running'])
        .executeTakeFirst();
      changed += Number(r.numUpdatedRows);
    }
    return changed;
  }

  async recordUsage(row: UsageRow): Promise<void> {
    const now = new Date().toISOString();
    await this.db
      .insertInto('ai_api_usage')
      .values({ ...row, created_at: now, updated_at: now })
      .execute();
    await this.changes.changed({ entity: 'vendor_usage' });
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
  async advanceContentStatus(contentId: number, to: 'audio_ready' | 'rendered'): Promise<boolean> {
    const changed = await this.db
      .updateTable('contents')
      .set({ status: to, updated_at: new Date().toISOString() })
      .where('id', '=', contentId)
      .where('status', 'in', ADVANCE_FROM[to])
      .returning('campaign_id')
      .executeTakeFirst();
    if (changed)
      await this.changes.changed({
        entity: 'content',
        op: 'updated',
        id: contentId,
        campaignId: changed.campaign_id,
      });
    return changed !== undefined;
  }
}

import type { ContentsRepo } from '../db/contents.repo.js';
import { searchTerms } from '../db/full-text.js';
import type { BlockInput, ScriptsRepo } from '../db/scripts.repo.js';
import type { Platform, ScriptBlock } from '../db/types.js';
import { AppError, notFound, validationFailed } from '../errors.js';
import { announcing, type ChangeNotifier } from './changes.js';

export interface Script {
  content_id: number;
  blocks: ScriptBlock[];
  full_text: string;
  /** Sum of the blocks' duration_s; blocks without a duration count as 0. */
  total_duration_s: number;
  block_count: number;
}

export interface SimilarScript {
  content_id: number;
  campaign_id: number;
  title: string;
  platform: Platform;
  concept_tone: string | null;
  performance_score: number;
  /**
   * With `q`: how well the script matches, 0–100, relative to the best match of the same
   * query (which is 100; 50 is half as relevant by the database's full-text ranking:
   * BM25 on SQLite, ts_rank on PostgreSQL); one decimal. Null without `q`.
   */
  relevance: number | null;
  excerpt: string;
}

/** Most blocks a script may have. */
export const MAX_BLOCKS = 200;

export class ScriptsService {
  constructor(
    private readonly scripts: ScriptsRepo,
    private readonly contents: ContentsRepo,
    private readonly changes: ChangeNotifier,
  ) {}

  async get(contentId: number): Promise<Script> {
    await this.requireContent(contentId);
    return toScript(contentId, await this.scripts.blocks(contentId));
  }

  /** Script writes also move the content's status and updated_at (see ScriptsRepo). */
  async replace(contentId: number, blocks: BlockInput[]): Promise<Script> {
    const campaignId = await this.requireContent(contentId);
    if (blocks.length > MAX_BLOCKS) throw validationFailed('blocks', `at most ${MAX_BLOCKS} blocks`);
    return this.scriptWrite(contentId, campaignId, async () =>
      toScript(contentId, await this.scripts.replace(contentId, blocks)),
    );
  }

  async updateBlock(contentId: number, blockId: number, patch: Partial<BlockInput>): Promise<ScriptBlock> {
    const campaignId = await this.requireContent(contentId);
    const b = await this.scriptWrite(contentId, campaignId, () =>
      this.scripts.updateBlock(contentId, blockId, patch),
    );
    if (!b) throw notFound('SCRIPT_BLOCK_NOT_FOUND', 'script block', blockId);
    return b;
  }

  async reorder(contentId: number, blockIds: number[]): Promise<Script> {
    const campaignId = await this.requireContent(contentId);
    const current = await this.scripts.blocks(contentId);
    const have = new Set(current.map((b) => b.id));
    const given = new Set(blockIds);
    if (given.size !== blockIds.length || given.size !== have.size || blockIds.some((id) => !have.has(id))) {
      throw new AppError('VALIDATION_FAILED', 'block_ids must list every block of the content exactly once', {
        field: 'block_ids',
        expected: [...have].sort((a, b) => a - b),
      });
    }
    return this.scriptWrite(contentId, campaignId, async () =>
      toScript(contentId, await this.scripts.reorder(contentId, blockIds)),
    );
  }

  async similar(opts: {
    platform: Platform;
    tone?: string;
    q?: string;
    limit: number;
  }): Promise<SimilarScript[]> {
    const terms = opts.q !== undefined ? searchTerms(opts.q) : undefined;
    if (terms !== undefined && terms.length === 0) return [];
    const rows = await this.scripts.similar({
      platform: opts.platform,
      tone: opts.tone,
      terms,
      limit: opts.limit,
    });
    // The engines' raw scores have no fixed scale (SQLite's BM25 for a term in most scripts
    // is about 1e-6): scale them to the best match, which is always on the first page.
    const best = rows.reduce((m, r) => Math.max(m, r.relevance ?? 0), 0);
    return rows.map(({ body, relevance, ...r }) => ({
      ...r,
      relevance: relevance === null ? null : best > 0 ? Math.round((relevance / best) * 1000) / 10 : 100,
      excerpt: body.length > 200 ? `${body.slice(0, 199)}…` : body,
    }));
  }

  private scriptWrite<T>(contentId: number, campaignId: number, write: () => Promise<T>): Promise<T> {
    return announcing(this.changes, write, () => [{ entity: 'script', contentId, campaignId }]);
  }

  /** The content's campaign; throws CONTENT_NOT_FOUND. */
  private async requireContent(id: number): Promise<number> {
    const c = await this.contents.get(id);
    if (!c) throw notFound('CONTENT_NOT_FOUND', 'content', id);
    return c.campaign_id;
  }
}

function toScript(contentId: number, blocks: ScriptBlock[]): Script {
  return {
    content_id: contentId,
    blocks,
    full_text: blocks.map((b) => b.text).join('\n'),
    total_duration_s: Math.round(blocks.reduce((s, b) => s + (b.duration_s ?? 0), 0) * 1000) / 1000,
    block_count: blocks.length,
  };
}

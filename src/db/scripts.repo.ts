import { type Transaction, sql } from 'kysely';
import { fts5Query, tsQuery } from './full-text.js';
import type { BlockKind, Database, Db, Dialect, Platform, ScriptBlock } from './types.js';

export interface BlockInput {
  kind: BlockKind;
  text: string;
  subtitle_text?: string | null;
  duration_s?: number | null;
  background?: string | null;
  transition?: string | null;
}

export interface SimilarScriptRow {
  content_id: number;
  campaign_id: number;
  title: string;
  platform: Platform;
  concept_tone: string | null;
  performance_score: number;
  body: string;
  relevance: number | null;
}

/** Far above any real sequence (scripts have at most a few hundred blocks). */
const REORDER_OFFSET = 1_000_000;

export class ScriptsRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
  ) {}

  async blocks(contentId: number, trx: Db | Transaction<Database> = this.db): Promise<ScriptBlock[]> {
    return trx
      .selectFrom('script_blocks')
      .selectAll()
      .where('content_id', '=', contentId)
      .orderBy('sequence')
      .execute();
  }

  async block(contentId: number, blockId: number): Promise<ScriptBlock | undefined> {
    return this.db
      .selectFrom('script_blocks')
      .selectAll()
      .where('content_id', '=', contentId)
      .where('id', '=', blockId)
      .executeTakeFirst();
  }

  /** Replaces every block of a content atomically; sequences follow the array order from 1. */
  async replace(contentId: number, input: BlockInput[]): Promise<ScriptBlock[]> {
    return this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('script_blocks').where('content_id', '=', contentId).execute();
      const now = new Date().toISOString();
      if (input.length > 0) {
        await trx
          .insertInto('script_blocks')
          .values(
            input.map((b, i) => ({
              content_id: contentId,
              sequence: i + 1,
              kind: b.kind,
              text: b.text,
              subtitle_text: b.subtitle_text ?? null,
              duration_s: b.duration_s ?? null,
              background: b.background ?? null,
              transition: b.transition ?? null,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute();
      }
      await this.afterChange(trx, contentId, now);
      return this.blocks(contentId, trx);
    });
  }

  async updateBlock(
    contentId: number,
    blockId: number,
    patch: Partial<BlockInput>,
  ): Promise<ScriptBlock | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const now = new Date().toISOString();
      const row = await trx
        .updateTable('script_blocks')
        .set({ ...patch, updated_at: now })
        .where('content_id', '=', contentId)
        .where('id', '=', blockId)
        .returningAll()
        .executeTakeFirst();
      if (row) await this.afterChange(trx, contentId, now);
      return row;
    });
  }

  /** Sets the order of all blocks; `blockIds` must be a permutation of the content's block ids (checked by the caller). */
  async reorder(contentId: number, blockIds: number[]): Promise<ScriptBlock[]> {
    return this.db.transaction().execute(async (trx) => {
      const now = new Date().toISOString();
      // Two passes: moving every block out of the 1..n range first keeps the unique (content_id, sequence)
      // index satisfied while the new order is written.
      await trx
        .updateTable('script_blocks')
        .set({ sequence: sql`sequence + ${REORDER_OFFSET}` })
        .where('content_id', '=', contentId)
        .execute();
      for (const [i, id] of blockIds.entries()) {
        await trx
          .updateTable('script_blocks')
          .set({ sequence: i + 1, updated_at: now })
          .where('content_id', '=', contentId)
          .where('id', '=', id)
          .execute();
      }
      await this.afterChange(trx, contentId, now);
      return this.blocks(contentId, trx);
    });
  }

  /** Keeps the searchable script document and the content's status in step with its blocks. */
  private async afterChange(trx: Transaction<Database>, contentId: number, now: string): Promise<void> {
    const blocks = await this.blocks(contentId, trx);
    const body = blocks.map((b) => b.text).join('\n');
    if (blocks.length === 0) {
      await trx.deleteFrom('script_documents').where('content_id', '=', contentId).execute();
    } else {
      await trx
        .insertInto('script_documents')
        .values({ content_id: contentId, body, updated_at: now })
        .onConflict((oc) => oc.column('content_id').doUpdateSet({ body, updated_at: now }))
        .execute();
    }
    await trx
      .updateTable('contents')
      .set({ status: blocks.length > 0 ? 'scripted' : 'draft', updated_at: now })
      .where('id', '=', contentId)
      .where('status', 'in', blocks.length > 0 ? ['draft'] : ['scripted'])
      .execute();
  }

  /**
   * Best-performing scripts on a platform (by the content's latest performance_score),
   * optionally filtered by campaign tone and ranked by full-text relevance to `terms`.
   */
  async similar(opts: {
    platform: Platform;
    tone?: string;
    terms?: string[];
    limit: number;
  }): Promise<SimilarScriptRow[]> {
    const hasTerms = opts.terms !== undefined && opts.terms.length > 0;
    let q = this.db
      .selectFrom('contents as c')
      .innerJoin('campaigns as cp', 'cp.id', 'c.campaign_id')
      .innerJoin('script_documents as d', 'd.content_id', 'c.id')
      .select([
        'c.id as content_id',
        'c.campaign_id',
        'c.title',
        'c.platform',
        'cp.concept_tone',
        sql<number>`c.latest_performance_score`.as('performance_score'),
        'd.body',
      ])
      .where('c.platform', '=', opts.platform)
      .where('c.latest_performance_score', 'is not', null);
    if (opts.tone !== undefined) q = q.where('cp.concept_tone', '=', opts.tone);
    if (!hasTerms) {
      return q
        .select(sql<null>`null`.as('relevance'))
        .orderBy('c.latest_performance_score', 'desc')
        .orderBy('c.id', 'desc')
        .limit(opts.limit)
        .execute();
    }
    const terms = opts.terms as string[];
    if (this.dialect === 'sqlite') {
      // bm25() is lower-is-better; negate so relevance is higher-is-better on both dialects.
      return q
        .innerJoin(
          sql<{
            rowid: number;
            rank: number;
          }>`(select rowid, bm25(script_fts) as rank from script_fts where script_fts match ${fts5Query(terms)})`.as(
            'f',
          ),
          (j) => j.onRef(sql.ref('f.rowid'), '=', 'c.id'),
        )
        .select(sql<number>`-f.rank`.as('relevance'))
        .orderBy(sql`f.rank`)
        .orderBy('c.latest_performance_score', 'desc')
        .orderBy('c.id', 'desc')
        .limit(opts.limit)
        .execute();
    }
    const tsq = sql`to_tsquery('simple', ${tsQuery(terms)})`;
    return q
      .where(sql<boolean>`d.body_tsv @@ ${tsq}`)
      .select(sql<number>`ts_rank(d.body_tsv, ${tsq})`.as('relevance'))
      .orderBy(sql`ts_rank(d.body_tsv, ${tsq})`, 'desc')
      .orderBy('c.latest_performance_score', 'desc')
      .orderBy('c.id', 'desc')
      .limit(opts.limit)
      .execute();
  }
}

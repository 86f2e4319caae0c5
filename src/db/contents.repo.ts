import type { Updateable } from 'kysely';
import { contentMatches } from './full-text.js';
import { afterCursor, type TimeCursor } from './pagination.js';
import type { Insertable } from 'kysely';
import type { Content, ContentStatus, ContentsTable, Db, Dialect } from './types.js';

export interface ContentFilter {
  campaignId: number;
  status?: ContentStatus;
  /** Search terms (see full-text.ts); all must match title or keywords. */
  terms?: string[];
}

export type NewContentRow = Omit<Insertable<ContentsTable>, 'id' | 'created_at' | 'updated_at'>;
export type ContentPatch = Omit<
  Updateable<ContentsTable>,
  'id' | 'campaign_id' | 'created_at' | 'updated_at'
>;

export class ContentsRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
  ) {}

  async create(input: NewContentRow): Promise<Content> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('contents')
      .values({ ...input, created_at: now, updated_at: now })
      .returning(CONTENT_COLUMNS)
      .executeTakeFirstOrThrow();
  }

  async get(id: number): Promise<Content | undefined> {
    return this.db.selectFrom('contents').select(CONTENT_COLUMNS).where('id', '=', id).executeTakeFirst();
  }

  /** Newest first (`created_at DESC, id DESC`), keyset-paginated. */
  async list(filter: ContentFilter, page: { limit: number; cursor?: TimeCursor }): Promise<Content[]> {
    let q = this.db
      .selectFrom('contents')
      .select(CONTENT_COLUMNS)
      .where('campaign_id', '=', filter.campaignId);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    if (filter.terms && filter.terms.length > 0) q = q.where(contentMatches(this.dialect, filter.terms));
    if (page.cursor) q = q.where(afterCursor(page.cursor));
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
  }

  async update(id: number, patch: ContentPatch): Promise<Content | undefined> {
    return this.db
      .updateTable('contents')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .returning(CONTENT_COLUMNS)
      .executeTakeFirst();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('contents').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

/** Explicit columns: PostgreSQL has a generated `search_tsv` column that is not part of the row. */
export const CONTENT_COLUMNS = [
  'id',
  'campaign_id',
  'title',
  'platform',
  'status',
  'keywords',
  'publish_at',
  'published_at',
  'latest_performance_score',
  'latest_recorded_at',
  'created_at',
  'updated_at',
] as const;

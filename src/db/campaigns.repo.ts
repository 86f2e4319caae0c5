import type { Updateable } from 'kysely';
import { afterCursor, type TimeCursor } from './pagination.js';
import type { Campaign, CampaignStatus, CampaignsTable, Db, NewCampaign, Platform } from './types.js';

export interface CampaignFilter {
  clientId?: number;
  status?: CampaignStatus;
  platform?: Platform;
  /** Inclusive lower bound on created_at (ISO). */
  createdFrom?: string;
  /** Exclusive upper bound on created_at (ISO). */
  createdTo?: string;
}

export type CampaignPatch = Omit<
  Updateable<CampaignsTable>,
  'id' | 'client_id' | 'created_at' | 'updated_at'
>;

export class CampaignsRepo {
  constructor(private readonly db: Db) {}

  async create(input: Omit<NewCampaign, 'id' | 'created_at' | 'updated_at'>): Promise<Campaign> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('campaigns')
      .values({ ...input, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async get(id: number): Promise<Campaign | undefined> {
    return this.db.selectFrom('campaigns').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Newest first (`created_at DESC, id DESC`), keyset-paginated; fetches `limit` rows. */
  async list(filter: CampaignFilter, page: { limit: number; cursor?: TimeCursor }): Promise<Campaign[]> {
    let q = this.db.selectFrom('campaigns').selectAll();
    if (filter.clientId !== undefined) q = q.where('client_id', '=', filter.clientId);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    if (filter.platform !== undefined) q = q.where('platform', '=', filter.platform);
    if (filter.createdFrom !== undefined) q = q.where('created_at', '>=', filter.createdFrom);
    if (filter.createdTo !== undefined) q = q.where('created_at', '<', filter.createdTo);
    if (page.cursor) q = q.where(afterCursor(page.cursor));
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
  }

  async update(id: number, patch: CampaignPatch): Promise<Campaign | undefined> {
    return this.db
      .updateTable('campaigns')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('campaigns').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

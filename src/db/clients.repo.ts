import type { Client, ClientUpdate, Db, NewClient } from './types.js';

export class ClientsRepo {
  constructor(private readonly db: Db) {}

  async create(input: Omit<NewClient, 'id' | 'created_at' | 'updated_at'>): Promise<Client> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('clients')
      .values({ ...input, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async get(id: number): Promise<Client | undefined> {
    return this.db.selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Ordered by id ascending; `afterId` is the keyset cursor. */
  async list(opts: { limit: number; afterId?: number }): Promise<Client[]> {
    let q = this.db.selectFrom('clients').selectAll().orderBy('id', 'asc').limit(opts.limit);
    if (opts.afterId !== undefined) q = q.where('id', '>', opts.afterId);
    return q.execute();
  }

  async update(
    id: number,
    patch: Omit<ClientUpdate, 'id' | 'created_at' | 'updated_at'>,
  ): Promise<Client | undefined> {
    return this.db
      .updateTable('clients')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('clients').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
}

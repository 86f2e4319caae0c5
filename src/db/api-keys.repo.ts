import type { ApiKey, Db, Role } from './types.js';

export class ApiKeysRepo {
  constructor(private readonly db: Db) {}

  async create(input: { name: string; role: Role; key_hash: string; prefix: string }): Promise<ApiKey> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('api_keys')
      .values({ ...input, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async byHash(keyHash: string): Promise<ApiKey | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
  }

  async list(): Promise<ApiKey[]> {
    return this.db.selectFrom('api_keys').selectAll().orderBy('id').execute();
  }

  async countActive(): Promise<number> {
    const r = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async revoke(id: number): Promise<ApiKey | undefined> {
    const now = new Date().toISOString();
    return this.db
      .updateTable('api_keys')
      .set({ revoked_at: now, updated_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  async get(id: number): Promise<ApiKey | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async setPrefix(id: number, prefix: string): Promise<ApiKey> {
    return this.db
      .updateTable('api_keys')
      .set({ prefix, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async touch(id: number, at: string): Promise<void> {
    await this.db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
  }
}

import { type Insertable, type Selectable, sql } from 'kysely';
import type { AssetsTable, Db, Dialect, MediaChoicesTable } from '../../db/types.js';
import { writeTransaction } from '../../db/write-transaction.js';

export type Asset = Selectable<AssetsTable>;
export type NewAsset = Omit<Insertable<AssetsTable>, 'id' | 'created_at' | 'updated_at'>;
export type ChoiceOwner = MediaChoicesTable['owner_kind'];
export type ChoiceRole = MediaChoicesTable['role'];

/** Namespace of the PostgreSQL advisory locks on a sha256 (two-key form: apart from one-key locks such as the migrator's). */
const SHA_LOCK_SPACE = 0x0a55e7;

/** Rows of uploaded assets, the logo/music chosen on clients, campaigns and contents, and what renders read. */
export class AssetsRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
  ) {}

  /**
   * Runs `fn` with this repo inside one write transaction (see
   * writeTransaction): on SQLite it excludes every other writer; on
   * PostgreSQL it excludes what `lockSha`, `lockForDelete` and
   * `lockForRender` lock inside it.
   */
  async locked<T>(fn: (tx: AssetsRepo, db: Db) => Promise<T>): Promise<T> {
    return writeTransaction(this.db, this.dialect, (tx) => fn(new AssetsRepo(tx, this.dialect), tx));
  }

  /** Inside `locked`: waits for, then holds until the end, the lock on one sha256's rows and stored object. */
  async lockSha(sha256: string): Promise<void> {
    // SQLite: the write transaction already holds the database's only write lock.
    if (this.dialect === 'postgres')
      await sql`select pg_advisory_xact_lock(${SHA_LOCK_SPACE}::int, hashtext(${sha256}))`.execute(this.db);
  }

  /** Inside `locked`: the row, locked against renders recording it (undefined when it is gone). */
  async lockForDelete(id: number): Promise<Asset | undefined> {
    return this.db
      .selectFrom('assets')
      .selectAll()
      .where('id', '=', id)
      .$if(this.dialect === 'postgres', (q) => q.forUpdate())
      .executeTakeFirst();
  }

  /**
   * Inside `locked`: those of `ids` that exist and belong to the client,
   * locked against deletes until the transaction ends.
   */
  async lockForRender(clientId: number, ids: number[]): Promise<Asset[]> {
    if (ids.length === 0) return [];
    return this.db
      .selectFrom('assets')
      .selectAll()
      .where('id', 'in', [...new Set(ids)])
      .where('client_id', '=', clientId)
      .orderBy('id')
      .$if(this.dialect === 'postgres', (q) => q.forShare())
      .execute();
  }

  async clientExists(clientId: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('clients')
      .select('id')
      .where('id', '=', clientId)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** The client that owns a client, campaign or content (undefined when the owner does not exist). */
  async ownerClient(owner: ChoiceOwner, id: number): Promise<number | undefined> {
    if (owner === 'client') return (await this.clientExists(id)) ? id : undefined;
    if (owner === 'campaign') {
      const r = await this.db
        .selectFrom('campaigns')
        .select('client_id')
        .where('id', '=', id)
        .executeTakeFirst();
      return r?.client_id;
    }
    const r = await this.db
      .selectFrom('contents as c')
      .innerJoin('campaigns as g', 'g.id', 'c.campaign_id')
      .select('g.client_id')
      .where('c.id', '=', id)
      .executeTakeFirst();
    return r?.client_id;
  }

  async insert(asset: NewAsset): Promise<Asset> {
    const now = new Date().toISOString();
    return this.db
      .insertInto('assets')
      .values({ ...asset, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async get(id: number): Promise<Asset | undefined> {
    return this.db.selectFrom('assets').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async bySha(clientId: number, sha256: string): Promise<Asset | undefined> {
    return this.db
      .selectFrom('assets')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('sha256', '=', sha256)
      .executeTakeFirst();
  }

  async list(clientId: number, kind?: Asset['kind']): Promise<Asset[]> {
    let q = this.db.selectFrom('assets').selectAll().where('client_id', '=', clientId);
    if (kind) q = q.where('kind', '=', kind);
    return q.orderBy('id').execute();
  }

  /** Rows (of any client) that share a stored object. */
  async countSha(sha256: string): Promise<number> {
    const r = await this.db
      .selectFrom('assets')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('sha256', '=', sha256)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async delete(id: number): Promise<void> {
    await this.db.deleteFrom('assets').where('id', '=', id).execute();
  }

  /** Renders that are queued or running and read this asset. */
  async activeRendersUsing(assetId: number): Promise<number[]> {
    const rows = await this.db
      .selectFrom('render_assets as ra')
      .innerJoin('renders as r', 'r.id', 'ra.render_id')
      .select('r.id')
      .where('ra.asset_id', '=', assetId)
      .where('r.status', 'in', ['queued', 'running'])
      .orderBy('r.id')
      .execute();
    return rows.map((r) => r.id);
  }

  /** Records that a render reads these assets (those already recorded stay as they are). */
  async recordRenderAssets(renderId: number, assetIds: number[]): Promise<void> {
    const unique = [...new Set(assetIds)];
    if (unique.length === 0) return;
    await this.db
      .insertInto('render_assets')
      .values(unique.map((asset_id) => ({ render_id: renderId, asset_id })))
      .onConflict((oc) => oc.columns(['render_id', 'asset_id']).doNothing())
      .execute();
  }

  async choice(owner: ChoiceOwner, ownerId: number, role: ChoiceRole): Promise<Asset | undefined> {
    return this.db
      .selectFrom('media_choices as m')
      .innerJoin('assets as a', 'a.id', 'm.asset_id')
      .selectAll('a')
      .where('m.owner_kind', '=', owner)
      .where('m.owner_id', '=', ownerId)
      .where('m.role', '=', role)
      .executeTakeFirst();
  }

  /** Sets (or with null clears) the asset an owner uses in a role. */
  async setChoice(
    owner: ChoiceOwner,
    ownerId: number,
    role: ChoiceRole,
    assetId: number | null,
  ): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx
        .deleteFrom('media_choices')
        .where('owner_kind', '=', owner)
        .where('owner_id', '=', ownerId)
        .where('role', '=', role)
        .execute();
      if (assetId === null) return;
      const now = new Date().toISOString();
      await tx
        .insertInto('media_choices')
        .values({
          owner_kind: owner,
          owner_id: ownerId,
          role,
          asset_id: assetId,
          created_at: now,
          updated_at: now,
        })
        .execute();
    });
  }
}

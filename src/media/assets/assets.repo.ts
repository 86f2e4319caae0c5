import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { type Insertable, type Selectable, sql } from 'kysely';
import type { AssetsTable, Db, Dialect, MediaChoicesTable } from '../../db/types.js';
import { writeTransaction } from '../../db/write-transaction.js';

export type Asset = Selectable<AssetsTable>;
export type NewAsset = Omit<Insertable<AssetsTable>, 'id' | 'created_at' | 'updated_at'>;
export type ChoiceOwner = MediaChoicesTable['owner_kind'];
export type ChoiceRole = MediaChoicesTable['role'];

/** Namespace of the PostgreSQL advisory locks on a sha256 (two-key form: apart from one-key locks such as the migrator's). */
const SHA_LOCK_SPACE = 0x0a55e7;
/**
 * How long a SQLite lease on a sha256 lasts: far longer than a hold (a few store
 * calls). A process that died holding one delays that sha256's uploads and deletes
 * by at most this.
 */
const SHA_LEASE_MS = 60_000;
/** The longest pause between tries for a SQLite lease another process holds (from 1 ms, doubling). */
const SHA_LEASE_POLL_MAX_MS = 50;

/** Rows of uploaded assets, the logo/music chosen on clients, campaigns and contents, and what renders read. */
export class AssetsRepo {
  constructor(
    private readonly db: Db,
    private readonly dialect: Dialect,
    /** True for the repo a `locked` step or a PostgreSQL `withShaLock` hands out: inner `locked` steps join it. */
    private readonly inTransaction = false,
  ) {}

  /**
   * Runs `fn` with this repo inside one write transaction (see
   * writeTransaction): on SQLite it excludes every other writer; on
   * PostgreSQL it excludes what `lockForDelete` and `lockForRender` lock
   * inside it. Called inside another such step, `fn` joins it. No storage
   * calls inside: on SQLite they would hold the database's write lock.
   */
  async locked<T>(fn: (tx: AssetsRepo, db: Db) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this, this.db);
    return writeTransaction(this.db, this.dialect, (tx) => fn(new AssetsRepo(tx, this.dialect, true), tx));
  }

  /**
   * Runs `fn` holding the lock on one sha256's rows and stored object, against
   * every process of the deployment:
   * - PostgreSQL: inside a transaction holding an advisory lock on the
   *   sha256 (the `locked` steps of `fn` join it);
   * - SQLite: holding a lease row in `asset_locks`, outside any transaction
   *   (the `locked` steps of `fn` are short transactions of their own). A
   *   write transaction open across `fn`'s storage calls would make any other
   *   connection of this process that writes meanwhile (the cache's
   *   generation log) sleep in SQLite's busy handler, which blocks the event
   *   loop and so the transaction itself, until its busy timeout.
   */
  async withShaLock<T>(sha256: string, fn: (repo: AssetsRepo) => Promise<T>): Promise<T> {
    if (this.dialect === 'postgres')
      return this.locked(async (tx, db) => {
        await sql`select pg_advisory_xact_lock(${SHA_LOCK_SPACE}::int, hashtext(${sha256}))`.execute(db);
        return fn(tx);
      });
    const holder = randomUUID();
    for (
      let waitMs = 1;
      !(await this.lease(sha256, holder));
      waitMs = Math.min(2 * waitMs, SHA_LEASE_POLL_MAX_MS)
    )
      await delay(waitMs);
    try {
      return await fn(this);
    } finally {
      await this.db
        .deleteFrom('asset_locks')
        .where('sha256', '=', sha256)
        .where('holder', '=', holder)
        .execute();
    }
  }

  /** Takes the SQLite lease on a sha256 unless another holder's has not run out; one statement, so one process wins. */
  private async lease(sha256: string, holder: string): Promise<boolean> {
    const now = Date.now();
    const expires_ms = now + SHA_LEASE_MS;
    const row = await this.db
      .insertInto('asset_locks')
      .values({ sha256, holder, expires_ms })
      .onConflict((oc) =>
        oc.column('sha256').doUpdateSet({ holder, expires_ms }).where('asset_locks.expires_ms', '<', now),
      )
      .returning('holder')
      .executeTakeFirst();
    return row?.holder === holder;
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

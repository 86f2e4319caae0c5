/**
 * Races between asset uploads, deletes and render requests, on each database
 * of the run and over both media stores (the local directory; S3 — the
 * S3-compatible server of test/support/s3.ts).
 *
 * Each test pauses one operation at a chosen point (a store call, or just
 * after a chosen SQL statement) and there runs a second operation "as far as
 * it can go": to its end, unless the paused step holds a lock the second one
 * needs. On PostgreSQL the second runs until it ends or a backend of the
 * database waits on a lock; on SQLite, when the paused step holds the
 * database's write lock or a lease on a sha256 (seen from a connection of the
 * test's own), the second starts once the paused operation has ended, which
 * is the only order those locks allow. So the interleaving each test names happens exactly
 * whenever nothing prevents it, with no sleeps. The paused operation runs on
 * a database connection of its own, as another process would.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import SQLite from 'better-sqlite3';
import {
  AliasNode,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryId,
  type QueryResult,
  type RootOperationNode,
  sql,
  TableNode,
  type UnknownRow,
} from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { AppError } from '../../src/errors.js';
import { createSystem, type System } from '../../src/main/system.js';
import { AssetService } from '../../src/media/assets/asset.service.js';
import { type Asset, AssetsRepo } from '../../src/media/assets/assets.repo.js';
import { locateFfprobe } from '../../src/media/ffmpeg.js';
import { MediaRequests } from '../../src/media/media-requests.js';
import { createMediaServices, type MediaServices } from '../../src/media/media-services.js';
import { type MediaStore, mediaKeys } from '../../src/media/storage/media-store.js';
import { type DbBackend, dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { type S3TestTarget, startS3 } from '../support/s3.js';
import { makeImage } from './asset-fixtures.js';
import { seedContent, silentLogger, tempDir } from './media-fixtures.js';

/** Store calls to pause at (each hook runs in the calling operation, which waits for it). */
interface StoreHooks {
  afterFile?: (key: string) => Promise<void>;
  beforeDelete?: (key: string) => Promise<void>;
  afterPutFile?: (key: string) => Promise<void>;
}

/** The store itself, with the hooks run around three of its calls. */
function withHooks(store: MediaStore, hooks: StoreHooks): MediaStore {
  const hooked: Partial<MediaStore> = {
    async file(key) {
      const f = await store.file(key);
      await hooks.afterFile?.(key);
      return f;
    },
    async delete(key) {
      await hooks.beforeDelete?.(key);
      await store.delete(key);
    },
    async putFile(key, file, opts) {
      await store.putFile(key, file, opts);
      await hooks.afterPutFile?.(key);
    },
  };
  return Object.assign(Object.create(store) as MediaStore, hooked);
}

/** Runs `run` once, for the first call. */
function once<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let fired = false;
  return async (...args) => {
    if (fired) return;
    fired = true;
    await run(...args);
  };
}

/** Pauses a query, once armed, just after the first statement that matches: its result waits for `run`. */
class StatementPause implements KyselyPlugin {
  #armed: { when: (node: RootOperationNode) => boolean; run: () => Promise<void> } | undefined;
  readonly #fire = new WeakMap<QueryId, () => Promise<void>>();

  arm(when: (node: RootOperationNode) => boolean, run: () => Promise<void>): void {
    this.#armed = { when, run };
  }

  transformQuery({ node, queryId }: PluginTransformQueryArgs): RootOperationNode {
    const armed = this.#armed;
    if (armed?.when(node)) {
      this.#armed = undefined;
      this.#fire.set(queryId, armed.run);
    }
    return node;
  }

  async transformResult({ result, queryId }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const run = this.#fire.get(queryId);
    if (run) await run();
    return result;
  }
}

/** A select whose FROM names the table (alias or not). */
const selectsFrom =
  (table: string) =>
  (node: RootOperationNode): boolean =>
    node.kind === 'SelectQueryNode' &&
    (node.from?.froms ?? []).some((f) => {
      const t = AliasNode.is(f) ? f.node : f;
      return TableNode.is(t) && t.table.identifier.name === table;
    });

type Settled<T> = { ok: true; value: T } | { ok: false; err: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
const unwrap = <T>(s: Settled<T>): T => {
  if (s.ok) return s.value;
  throw s.err;
};
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

const cases: [DbBackend, 'local' | 's3'][] = dbBackends().flatMap((db) => [
  [db, 'local'] as [DbBackend, 'local'],
  [db, 's3'] as [DbBackend, 's3'],
]);

describe.each(cases)('asset races (%s, %s storage)', (backend, storageKind) => {
  let s3: S3TestTarget | undefined;
  let system: System;
  /** The paused operations' own connection (another process's, in effect). */
  let other: DatabaseHandle;
  const pause = new StatementPause();
  /** Media services on `other`, pausing at the armed statement. */
  let paused: MediaServices;
  let pausedRequests: MediaRequests;
  const dataDir = tempDir('ov-asset-races-');
  const sqliteFile = path.join(dataDir, 'omnivibe.db');
  let size = 40;
  /** Bytes no other test uses (ffmpeg's colour source rounds odd widths to even ones). */
  const freshImage = () => fs.readFileSync(makeImage({ w: (size += 2), h: 30, color: 'teal' }));

  beforeAll(async () => {
    if (storageKind === 's3') s3 = await startS3();
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      DATABASE_URL:
        backend === 'sqlite'
          ? `sqlite:${sqliteFile}`
          : ((await freshDatabaseConfig('postgres')) as { url: string }).url,
      LOG_LEVEL: 'silent',
      METRICS_ENABLED: 'false',
      ...s3?.env,
    };
    system = await createSystem(loadConfig(env), silentLogger);
    expect(system.media.storage.kind).toBe(storageKind);
    other = openDatabase(system.config.database);
    paused = createMediaServices(
      system.config.media,
      other.db.withPlugin(pause),
      other.dialect,
      silentLogger,
      { changes: system.changes },
    );
    pausedRequests = new MediaRequests(paused, system.jobs, system.jobs.admin);
  });
  afterAll(async () => {
    await paused?.close();
    await other?.close();
    await system?.close();
    await s3?.stop();
  });

  /** The asset service on the paused side's connection, with hooks on its store. */
  const hookedAssets = (hooks: StoreHooks) =>
    new AssetService({
      repo: new AssetsRepo(other.db, other.dialect),
      storage: withHooks(system.media.storage, hooks),
      scratchDir: path.join(dataDir, 'scratch-hooked'),
      ffprobePath: locateFfprobe(system.media.ffmpegPath),
      limits: system.config.media.assets,
      logger: silentLogger,
    });

  /** Runs `use` on a connection of the test's own to the SQLite file, that waits `busyTimeoutMs` for a lock. */
  function onOwnConnection<T>(busyTimeoutMs: number, use: (conn: SQLite.Database) => T): T {
    const conn = new SQLite(sqliteFile);
    try {
      conn.pragma(`busy_timeout = ${busyTimeoutMs}`);
      return use(conn);
    } finally {
      conn.close();
    }
  }

  /** True while another connection holds the SQLite database's write lock, or a lease on a sha256. */
  const sqliteLocked = (): boolean =>
    onOwnConnection(0, (conn) => {
      try {
        conn.exec('begin immediate');
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
        throw err;
      }
      const leases = conn.prepare('select count(*) from asset_locks').pluck().get();
      conn.exec('rollback');
      return leases !== 0;
    });

  const lockWaiters = async () =>
    (
      await sql<{
        n: number;
      }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(
        system.database.db,
      )
    ).rows[0]?.n ?? 0;

  /** Runs `op` as far as it can go now (see the file comment); `outcome()` is its result, once it can end. */
  async function meanwhile<T>(op: () => Promise<T>): Promise<{ outcome: () => Promise<T> }> {
    if (backend === 'sqlite') {
      if (sqliteLocked()) return { outcome: op };
      const settled = await settle(op());
      return { outcome: async () => unwrap(settled) };
    }
    let ended = false;
    const settled = settle(op()).finally(() => (ended = true));
    while (!ended && (await lockWaiters()) === 0) await delay(5);
    return { outcome: async () => unwrap(await settled) };
  }

  const upload = async (assets: AssetService, clientId: number, bytes: Buffer): Promise<Asset> => {
    const file = path.join(tempDir('ov-asset-races-upload-'), 'upload');
    fs.writeFileSync(file, bytes);
    const { asset } = await assets.upload(clientId, {
      stream: fs.createReadStream(file),
      filename: 'upload',
      declaredKind: undefined,
      truncated: () => false,
    });
    return asset;
  };
  const newClient = async () => (await seedContent(system.database.db, ['x'])).clientId;
  const rowsOf = async (bytes: Buffer) =>
    (
      await system.database.db
        .selectFrom('assets')
        .select('id')
        .where('sha256', '=', sha(bytes))
        .orderBy('id')
        .execute()
    ).map((r) => r.id);
  /** The sha256 of the stored object of these bytes, or undefined when there is none. */
  const storedSha = async (bytes: Buffer) => {
    const stored = await system.media.storage.read(mediaKeys.asset(sha(bytes)));
    return stored && sha(stored);
  };

  it('an upload that found the object stored while the last other row was deleted keeps its object', async () => {
    const bytes = freshImage();
    const b = await upload(system.media.assets, await newClient(), bytes);
    let deleted: { outcome: () => Promise<void> } | undefined;
    // Paused where the upload has seen the object: the delete of the only other row runs there.
    const hooked = hookedAssets({
      afterFile: once(async () => {
        deleted = await meanwhile(() => system.media.assets.delete(b.id));
      }),
    });
    const a = await upload(hooked, await newClient(), bytes);
    await deleted?.outcome();
    expect(await rowsOf(bytes)).toEqual([a.id]);
    expect(await storedSha(bytes)).toBe(sha(bytes));
  });

  it('an upload while the delete of the last row is removing the object stores it again', async () => {
    const bytes = freshImage();
    const clientA = await newClient();
    const b = await upload(system.media.assets, await newClient(), bytes);
    let uploaded: { outcome: () => Promise<Asset> } | undefined;
    // Paused where the delete has removed the last row and is about to remove the object.
    const hooked = hookedAssets({
      beforeDelete: once(async () => {
        uploaded = await meanwhile(() => upload(system.media.assets, clientA, bytes));
      }),
    });
    await hooked.delete(b.id);
    const a = await uploaded?.outcome();
    expect(a?.client_id).toBe(clientA);
    expect(await rowsOf(bytes)).toEqual([a?.id]);
    expect(await storedSha(bytes)).toBe(sha(bytes));
  });

  it('an upload whose freshly stored object a delete removed before its row was written stores it again', async () => {
    const bytes = freshImage();
    const clientB = await newClient();
    // Paused just after the put: another client uploads the same bytes (finding them stored) and deletes them.
    const hooked = hookedAssets({
      afterPutFile: once(async () => {
        const b = await upload(system.media.assets, clientB, bytes);
        await system.media.assets.delete(b.id);
      }),
    });
    const a = await upload(hooked, await newClient(), bytes);
    expect(await rowsOf(bytes)).toEqual([a.id]);
    expect(await storedSha(bytes)).toBe(sha(bytes));
  });

  it('an upload whose object deletes keep removing gives up with 409 after three puts, leaving nothing', async () => {
    const bytes = freshImage();
    const clientB = await newClient();
    let puts = 0;
    const hooked = hookedAssets({
      afterPutFile: async () => {
        puts++;
        const b = await upload(system.media.assets, clientB, bytes);
        await system.media.assets.delete(b.id);
      },
    });
    const err = await upload(hooked, await newClient(), bytes).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'CONFLICT', details: { reason: 'deleted_while_stored' } });
    expect(puts).toBe(3);
    expect(await rowsOf(bytes)).toEqual([]);
    expect(await storedSha(bytes)).toBeUndefined();
  });

  /** A content of one block whose background is a fresh image asset of its client. */
  async function contentWithBackground() {
    const seeded = await seedContent(system.database.db, [{ text: '장면', duration_s: 1 }]);
    const asset = await upload(system.media.assets, seeded.clientId, freshImage());
    await system.database.db
      .updateTable('script_blocks')
      .set({ background: `asset:${asset.id}` })
      .where('content_id', '=', seeded.contentId)
      .execute();
    return { contentId: seeded.contentId, asset };
  }
  const rendersOf = async (contentId: number) =>
    (
      await system.database.db
        .selectFrom('renders')
        .select('id')
        .where('content_id', '=', contentId)
        .execute()
    ).map((r) => r.id);

  it('a delete that comes while a render request checks its assets is refused with 409', async () => {
    const { contentId, asset } = await contentWithBackground();
    let deleted: { outcome: () => Promise<void> } | undefined;
    // Paused just after the request read the asset rows, before it recorded them.
    pause.arm(selectsFrom('assets'), async () => {
      deleted = await meanwhile(() => system.media.assets.delete(asset.id));
    });
    const { renderId } = await pausedRequests.requestRender(contentId, { silent: true, quality: 'low' });
    const err = await deleted?.outcome().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ASSET_IN_USE', details: { renders: [renderId] } });
    expect(await system.media.assetsRepo.get(asset.id)).toBeDefined();
    expect(await system.media.assetsRepo.activeRendersUsing(asset.id)).toEqual([renderId]);
  });

  it('a render request that comes while a delete checks the asset is refused, leaving no render', async () => {
    const { contentId, asset } = await contentWithBackground();
    let requested: { outcome: () => Promise<unknown> } | undefined;
    // Paused just after the delete saw no render in progress using the asset, before it deleted the row.
    pause.arm(selectsFrom('render_assets'), async () => {
      requested = await meanwhile(() =>
        system.mediaRequests.requestRender(contentId, { silent: true, quality: 'low' }),
      );
    });
    await paused.assets.delete(asset.id);
    const err = await requested?.outcome().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'UNPROCESSABLE',
      details: { reason: 'background_unusable', asset_id: asset.id },
    });
    expect(await rendersOf(contentId)).toEqual([]);
    expect(await system.media.assetsRepo.get(asset.id)).toBeUndefined();
  });

  it('a render records, when it starts, the assets it reads then: a logo chosen after the request', async () => {
    const seeded = await seedContent(system.database.db, [{ text: '장면', duration_s: 1 }]);
    const logo = () => fs.readFileSync(makeImage({ w: (size += 2), h: 30, color: 'navy', alpha: true }));
    const first = await upload(system.media.assets, seeded.clientId, logo());
    await system.media.assets.choose('client', seeded.clientId, 'logo', first.id);
    const { renderId } = await system.mediaRequests.requestRender(seeded.contentId, {
      silent: true,
      quality: 'low',
    });
    const second = await upload(system.media.assets, seeded.clientId, logo());
    await system.media.assets.choose('client', seeded.clientId, 'logo', second.id);
    await system.media.renders.render({ renderId, quality: 'low', silent: true });
    const recorded = await system.database.db
      .selectFrom('render_assets')
      .select('asset_id')
      .where('render_id', '=', renderId)
      .orderBy('asset_id')
      .execute();
    expect(recorded.map((r) => r.asset_id)).toEqual([first.id, second.id]);
  });

  it.runIf(backend === 'sqlite')(
    'no SQLite write lock is held across a store call: another connection writes meanwhile without waiting',
    async () => {
      const bytes = freshImage();
      const writes: number[] = [];
      // With the write lock held here, this would wait (blocking the process, as the cache's
      // generation log would) until its busy timeout, then fail with SQLITE_BUSY.
      const writeMeanwhile = async () => {
        const t0 = performance.now();
        onOwnConnection(1000, (conn) =>
          conn.exec('create table if not exists probe_writes (x); insert into probe_writes values (1)'),
        );
        writes.push(performance.now() - t0);
      };
      const hooked = hookedAssets({ afterFile: once(writeMeanwhile), beforeDelete: once(writeMeanwhile) });
      const a = await upload(hooked, await newClient(), bytes);
      await hooked.delete(a.id);
      expect(writes).toHaveLength(2);
      for (const ms of writes) expect(ms).toBeLessThan(500);
    },
  );

  it.runIf(backend === 'sqlite')(
    'a SQLite lease left by a process that died runs out, and the upload waiting for it goes on',
    async () => {
      const bytes = freshImage();
      const leftUntil = Date.now() + 300;
      await system.database.db
        .insertInto('asset_locks')
        .values({ sha256: sha(bytes), holder: 'a-process-that-died', expires_ms: leftUntil })
        .execute();
      const a = await upload(system.media.assets, await newClient(), bytes);
      expect(Date.now()).toBeGreaterThanOrEqual(leftUntil);
      expect(await rowsOf(bytes)).toEqual([a.id]);
      expect(await storedSha(bytes)).toBe(sha(bytes));
      expect(await system.database.db.selectFrom('asset_locks').selectAll().execute()).toEqual([]);
    },
  );
});

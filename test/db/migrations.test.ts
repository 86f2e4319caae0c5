/**
 * The migration set on both dialects: DESIGN.md's named indexes with their
 * columns, enums and foreign keys enforced by the database itself, re-running
 * is a no-op, and two processes migrating one fresh database at once both
 * succeed with every migration applied exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import { classifyDbError, type DbErrorKind } from '../../src/db/db-errors.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest, migrationsCurrent, migrationStatus } from '../../src/db/migrator.js';
import type { Database, Dialect } from '../../src/db/types.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** DESIGN.md's index list: name -> table and key columns (`col` or `col DESC`). */
const NAMED_INDEXES: Record<string, { table: string; columns: string[]; unique?: boolean }> = {
  idx_campaigns_client_id: { table: 'campaigns', columns: ['client_id'] },
  idx_campaigns_status: { table: 'campaigns', columns: ['status'] },
  idx_campaigns_platform: { table: 'campaigns', columns: ['platform'] },
  idx_campaigns_created_at: { table: 'campaigns', columns: ['created_at DESC'] },
  idx_contents_campaign_id: { table: 'contents', columns: ['campaign_id'] },
  idx_contents_status: { table: 'contents', columns: ['status'] },
  idx_contents_created_at: { table: 'contents', columns: ['created_at DESC'] },
  idx_contents_published_at: { table: 'contents', columns: ['published_at DESC'] },
  idx_contents_campaign_status: { table: 'contents', columns: ['campaign_id', 'status'] },
  idx_script_blocks_content_id: { table: 'script_blocks', columns: ['content_id'] },
  // Also the "sequence unique per content" rule.
  idx_script_blocks_sequence: { table: 'script_blocks', columns: ['content_id', 'sequence'], unique: true },
  idx_audio_generations_content_id: { table: 'audio_generations', columns: ['content_id'] },
  idx_audio_generations_task_id: { table: 'audio_generations', columns: ['task_id'] },
  idx_audio_generations_status: { table: 'audio_generations', columns: ['status'] },
  idx_audio_generations_created_at: { table: 'audio_generations', columns: ['created_at DESC'] },
  // Serves "latest metrics of a content" from the index order.
  idx_performance_content_id: { table: 'performance_metrics', columns: ['content_id', 'recorded_at DESC'] },
  idx_performance_recorded_at: { table: 'performance_metrics', columns: ['recorded_at DESC'] },
};

interface IndexInfo {
  table: string;
  columns: string[];
  unique: boolean;
}

async function indexes(db: Kysely<Database>, dialect: Dialect): Promise<Map<string, IndexInfo>> {
  const out = new Map<string, IndexInfo>();
  if (dialect === 'sqlite') {
    const list = await sql<{ name: string; tbl_name: string; sql: string | null }>`
      select name, tbl_name, sql from sqlite_master where type = 'index'`.execute(db);
    for (const ix of list.rows) {
      const cols = await sql<{ name: string | null; desc: number }>`
        select name, "desc" from pragma_index_xinfo(${ix.name}) where key = 1 order by seqno`.execute(db);
      out.set(ix.name, {
        table: ix.tbl_name,
        columns: cols.rows.map((c) => `${c.name ?? '?'}${c.desc ? ' DESC' : ''}`),
        unique: /^create unique/i.test(ix.sql ?? ''),
      });
    }
    return out;
  }
  const list = await sql<{ indexname: string; tablename: string; indexdef: string }>`
    select indexname, tablename, indexdef from pg_indexes where schemaname = current_schema()`.execute(db);
  for (const ix of list.rows) {
    const cols = /USING \w+ \((.*)\)/.exec(ix.indexdef)?.[1] ?? '';
    out.set(ix.indexname, {
      table: ix.tablename,
      columns: cols.split(', ').map((c) => c.replace(/"/g, '')),
      unique: /^CREATE UNIQUE/.test(ix.indexdef),
    });
  }
  return out;
}

/** Loosely typed view for rows the table types would (rightly) reject. */
type LooseDb = Kysely<Record<string, Record<string, unknown>>>;

async function dbError(p: Promise<unknown>): Promise<DbErrorKind | 'no error' | 'unclassified'> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return classifyDbError(err) ?? 'unclassified';
  }
}

describe.each(dbBackends())('migrations on %s', (backend) => {
  let config: DatabaseConfig;
  let handle: DatabaseHandle;
  let firstRun: string[];
  let names: string[];

  beforeAll(async () => {
    config = await freshDatabaseConfig(backend);
    handle = openDatabase(config);
    names = (await migrationStatus(handle.db, handle.dialect)).map((m) => m.name);
    firstRun = (await migrateToLatest(handle.db, config)).applied;
  });

  afterAll(async () => {
    await handle?.close();
  });

  it('applies every migration on a fresh database, in order', async () => {
    expect(names.length).toBeGreaterThan(0);
    expect(firstRun).toEqual(names);
    expect(await migrationsCurrent(handle.db, handle.dialect)).toBe(true);
  });

  it('creates every index named in DESIGN.md, on the documented columns', async () => {
    const found = await indexes(handle.db, handle.dialect);
    for (const [name, want] of Object.entries(NAMED_INDEXES)) {
      const got = found.get(name);
      expect(got, `index ${name} is missing`).toBeDefined();
      expect({ name, table: got?.table, columns: got?.columns }).toEqual({
        name,
        table: want.table,
        columns: want.columns,
      });
      if (want.unique) expect(got?.unique, `${name} must be unique`).toBe(true);
    }
  });

  it('migrating again is a no-op', async () => {
    const before = [...(await indexes(handle.db, handle.dialect)).keys()].sort();
    expect((await migrateToLatest(handle.db, config)).applied).toEqual([]);
    expect([...(await indexes(handle.db, handle.dialect)).keys()].sort()).toEqual(before);
    const status = await migrationStatus(handle.db, handle.dialect);
    expect(status.every((m) => m.executedAt !== null)).toBe(true);
  });

  describe('constraints enforced by the database', () => {
    let clientId: number;
    let campaignId: number;
    let contentId: number;
    const loose = () => handle.db as unknown as LooseDb;

    /** Inserts through the loose view (columns with database defaults may be left out) and returns the id. */
    const insertId = async (table: string, row: Record<string, unknown>) =>
      Number((await loose().insertInto(table).values(row).returning('id').executeTakeFirstOrThrow()).id);

    beforeAll(async () => {
      clientId = await insertId('clients', { name: 'Acme' });
      campaignId = await insertId('campaigns', { client_id: clientId, name: 'Spring', platform: 'youtube' });
      contentId = await insertId('contents', {
        campaign_id: campaignId,
        title: 'Teaser',
        platform: 'youtube',
      });
    });

    /** An enum column, a value outside it, and a valid row of its table (a function: ids exist only after beforeAll). */
    const ENUMS: { table: string; column: string; bad: string; row: () => Record<string, unknown> }[] = [
      {
        table: 'campaigns',
        column: 'status',
        bad: 'deleted',
        row: () => ({ client_id: clientId, name: 'c', status: 'paused', platform: 'tiktok' }),
      },
      {
        table: 'campaigns',
        column: 'platform',
        bad: 'myspace',
        row: () => ({ client_id: clientId, name: 'c', status: 'paused', platform: 'tiktok' }),
      },
      {
        table: 'contents',
        column: 'status',
        bad: 'live',
        row: () => ({ campaign_id: campaignId, title: 't', platform: 'tiktok', status: 'published' }),
      },
      {
        table: 'contents',
        column: 'platform',
        bad: 'vine',
        row: () => ({ campaign_id: campaignId, title: 't', platform: 'tiktok', status: 'draft' }),
      },
      {
        table: 'script_blocks',
        column: 'kind',
        bad: 'middle',
        row: () => ({ content_id: contentId, sequence: 1, kind: 'hook', text: '안녕' }),
      },
      {
        table: 'audio_generations',
        column: 'status',
        bad: 'done',
        row: () => ({ content_id: contentId, provider: 'espeak', status: 'queued' }),
      },
      {
        table: 'renders',
        column: 'status',
        bad: 'done',
        row: () => ({
          content_id: contentId,
          preset: 'youtube',
          width: 1920,
          height: 1080,
          status: 'queued',
        }),
      },
      {
        table: 'renders',
        column: 'preset',
        bad: 'vimeo',
        row: () => ({
          content_id: contentId,
          preset: 'youtube',
          width: 1920,
          height: 1080,
          status: 'queued',
        }),
      },
      {
        table: 'task_runs',
        column: 'status',
        bad: 'lost',
        row: () => ({ task_id: 't1', queue: 'default', name: 'video.render', attempt: 1, status: 'running' }),
      },
      {
        table: 'api_keys',
        column: 'role',
        bad: 'root',
        row: () => ({ name: 'k', role: 'viewer', key_hash: `h${Math.random()}`, prefix: 'ov_' }),
      },
    ];

    it.each(ENUMS)('$column of $table rejects $bad', async ({ table, column, bad, row }) => {
      // The valid row goes in (so the failure below is the enum's), then is removed again.
      const ok = await loose().insertInto(table).values(row()).returning('id').executeTakeFirstOrThrow();
      await loose().deleteFrom(table).where('id', '=', ok.id).execute();
      expect(
        await dbError(
          loose()
            .insertInto(table)
            .values({ ...row(), [column]: bad })
            .execute(),
        ),
      ).toBe('check');
    });

    it('rejects a row pointing at a missing parent', async () => {
      const missing = loose()
        .insertInto('contents')
        .values({ campaign_id: 987_654_321, title: 'orphan', platform: 'youtube' })
        .execute();
      expect(await dbError(missing)).toBe('foreign_key');
    });

    it('keeps sequence unique per content', async () => {
      const block = { content_id: contentId, sequence: 7, kind: 'body', text: 'one' };
      await loose().insertInto('script_blocks').values(block).execute();
      expect(await dbError(loose().insertInto('script_blocks').values(block).execute())).toBe('unique');
      await loose().deleteFrom('script_blocks').where('sequence', '=', 7).execute();
    });

    it('deleting a campaign deletes its contents, script blocks, documents, metrics, audio and renders', async () => {
      const db = loose();
      const camp = {
        id: await insertId('campaigns', { client_id: clientId, name: 'Doomed', platform: 'instagram' }),
      };
      const ids: number[] = [];
      for (const title of ['zebracrossing one', 'zebracrossing two']) {
        const c = { id: await insertId('contents', { campaign_id: camp.id, title, platform: 'instagram' }) };
        ids.push(c.id);
        await db
          .insertInto('script_blocks')
          .values(
            [1, 2, 3].map((sequence) => ({
              content_id: c.id,
              sequence,
              kind: 'body',
              text: `b${sequence}`,
            })),
          )
          .execute();
        await db.insertInto('script_documents').values({ content_id: c.id, body: 'b1\nb2\nb3' }).execute();
        await db
          .insertInto('performance_metrics')
          .values({ content_id: c.id, recorded_at: new Date().toISOString(), views: 10 })
          .execute();
        await db.insertInto('audio_generations').values({ content_id: c.id, provider: 'espeak' }).execute();
        await db
          .insertInto('renders')
          .values({ content_id: c.id, preset: 'instagram', width: 1080, height: 1350 })
          .execute();
        await db
          .insertInto('ai_api_usage')
          .values({
            provider: 'espeak',
            operation: 'tts',
            units: 1,
            unit: 'chars',
            campaign_id: camp.id,
            content_id: c.id,
          })
          .execute();
      }
      const count = async (
        table:
          | 'contents'
          | 'script_blocks'
          | 'script_documents'
          | 'performance_metrics'
          | 'audio_generations'
          | 'renders',
      ) => {
        const col = table === 'contents' ? 'id' : 'content_id';
        const r = await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where(col, 'in', ids)
          .executeTakeFirstOrThrow();
        return Number(r.n);
      };
      const children = [
        'contents',
        'script_blocks',
        'script_documents',
        'performance_metrics',
        'audio_generations',
        'renders',
      ] as const;
      const before = await Promise.all(children.map((t) => count(t)));
      expect(before).toEqual([2, 6, 2, 2, 2, 2]);

      await db.deleteFrom('campaigns').where('id', '=', camp.id).execute();

      expect(await Promise.all(children.map((t) => count(t)))).toEqual([0, 0, 0, 0, 0, 0]);
      // Cost records outlive what they were for: the links are cleared, the rows stay.
      const usage = await db
        .selectFrom('ai_api_usage')
        .select(['campaign_id', 'content_id'])
        .where('operation', '=', 'tts')
        .execute();
      expect(usage).toEqual([
        { campaign_id: null, content_id: null },
        { campaign_id: null, content_id: null },
      ]);
      if (handle.dialect === 'sqlite') {
        // The FTS5 delete triggers fire on cascaded deletes too.
        const fts = await sql<{
          n: number;
        }>`select count(*) as n from contents_fts where contents_fts match 'zebracrossing'`.execute(db);
        expect(fts.rows[0]?.n).toBe(0);
      }
      expect(
        await db.selectFrom('clients').select('id').where('id', '=', clientId).executeTakeFirst(),
      ).toBeDefined();
    });

    it('deleting a client deletes its campaigns', async () => {
      const client = await insertId('clients', { name: 'Gone' });
      const campaign = await insertId('campaigns', { client_id: client, name: 'x', platform: 'facebook' });
      await handle.db.deleteFrom('clients').where('id', '=', client).execute();
      expect(
        await handle.db.selectFrom('campaigns').select('id').where('id', '=', campaign).execute(),
      ).toEqual([]);
    });
  });
});

/**
 * A separate Node process that opens the database and runs migrateToLatest when told "go" on stdin,
 * then prints `{"applied": [...]}`: two of them race on one fresh database.
 */
function migrateProcess(config: DatabaseConfig): {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const script = `
    import { openDatabase } from ${JSON.stringify(path.join(ROOT, 'src/db/database.ts'))};
    import { migrateToLatest } from ${JSON.stringify(path.join(ROOT, 'src/db/migrator.ts'))};
    const config = JSON.parse(process.env.OV_TEST_DB_CONFIG);
    const handle = openDatabase(config);
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    try {
      const result = await migrateToLatest(handle.db, config);
      process.stdout.write(JSON.stringify(result) + '\\n');
    } finally {
      await handle.close();
      process.stdin.destroy();
    }
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, OV_TEST_DB_CONFIG: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.startsWith('ready\n')) resolve();
    });
    child.once('exit', () => reject(new Error(`migrate process exited before it was ready: ${stderr}`)));
  });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, ready, result };
}

describe.each(dbBackends())('concurrent migrations on %s', (backend) => {
  let dir: string | undefined;

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two processes migrating one fresh database both succeed, each migration applied once', async () => {
    let config: DatabaseConfig;
    if (backend === 'sqlite') {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-migrate-race-'));
      config = { dialect: 'sqlite', file: path.join(dir, 'race.db'), busyTimeoutMs: 5_000 };
    } else {
      config = await freshDatabaseConfig(backend);
    }
    const procs = [migrateProcess(config), migrateProcess(config)];
    try {
      await Promise.all(procs.map((p) => p.ready));
      for (const p of procs) p.child.stdin?.write('go\n');
      const results = await Promise.all(procs.map((p) => p.result));
      for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
      const applied = results.map(
        (r) => (JSON.parse(r.stdout.split('\n')[1] ?? '') as { applied: string[] }).applied,
      );
      // One process took the lock and applied everything; the other found nothing left to do.
      expect(applied.map((a) => a.length).sort()).toEqual([0, applied.flat().length]);

      const handle = openDatabase(config);
      try {
        const names = (await migrationStatus(handle.db, handle.dialect)).map((m) => m.name);
        // Every migration ran exactly once, across both processes.
        expect(applied.flat().sort()).toEqual([...names].sort());
        expect(await migrationsCurrent(handle.db, handle.dialect)).toBe(true);
        const rows = await sql<{ n: number }>`select count(*) as n from kysely_migration`.execute(handle.db);
        expect(Number(rows.rows[0]?.n)).toBe(names.length);
        const found = await indexes(handle.db, handle.dialect);
        for (const name of Object.keys(NAMED_INDEXES)) expect(found.has(name), name).toBe(true);
      } finally {
        await handle.close();
      }
      // Nothing is left beside the database but its own files (no lock file).
      if (config.dialect === 'sqlite')
        expect(
          fs.readdirSync(path.dirname(config.file)).filter((f) => !/^race\.db(-wal|-shm)?$/.test(f)),
        ).toEqual([]);
    } finally {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  }, 60_000);
});

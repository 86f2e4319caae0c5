/**
 * The hot queries use the indexes named in DESIGN.md, proven with each
 * engine's own plan (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN (FORMAT JSON)` on
 * PostgreSQL) on a database large enough that PostgreSQL's planner prefers
 * indexes. The SQL explained is captured from the app's own repositories as
 * they run, so a change to a repo's query is what this suite checks.
 */
import {
  CompiledQuery,
  type Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  sql,
} from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { createRepos, type Repos } from '../../src/db/repos.js';
import type { CampaignStatus, ContentStatus, Database, Dialect } from '../../src/db/types.js';
import {
  campaignOfContent,
  campaignStatusOf,
  clientOfCampaign,
  contentStatusOf,
  type SeedSize,
  seedDatabase,
} from '../../bench/lib/seed.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';

/** ~21k contents: enough rows that a sequential scan costs PostgreSQL's planner more than an index. */
const SIZE: SeedSize = {
  clients: 300,
  campaigns: 3_000,
  contentsPerCampaign: 7,
  blocksPerContent: 3,
  metricsPerContent: 3,
};

/** Records every query the app sends through this Kysely instance, for EXPLAIN. */
class QueryCapture implements KyselyPlugin {
  readonly seen: PluginTransformQueryArgs[] = [];
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.seen.push(args);
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

/** One table access in a plan, the same shape on both dialects. */
interface Access {
  table: string;
  index: string | null;
  /** True when the index is searched by key (SQLite SEARCH, PostgreSQL Index Cond); false for a full scan of it. */
  keyed: boolean;
  detail: string;
}

interface Plan {
  accesses: Access[];
  text: string;
}

interface PgPlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Plans?: PgPlanNode[];
}

async function explain(db: Kysely<Database>, dialect: Dialect, q: CompiledQuery): Promise<Plan> {
  if (dialect === 'sqlite') {
    const r = await db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${q.sql}`, [...q.parameters]),
    );
    const details = r.rows.map((row) => row.detail);
    const accesses: Access[] = [];
    for (const detail of details) {
      const m =
        /^(SCAN|SEARCH) (\S+)(?: USING (?:COVERING |PRIMARY KEY|INTEGER PRIMARY KEY)?(?:INDEX )?(\S+)?)?/.exec(
          detail,
        );
      if (!m) continue;
      const usesIndex = detail.includes(' USING ');
      accesses.push({
        table: m[2] as string,
        index: usesIndex ? (/USING (?:COVERING )?INDEX (\S+)/.exec(detail)?.[1] ?? 'rowid') : null,
        keyed: m[1] === 'SEARCH',
        detail,
      });
    }
    return { accesses, text: details.join('\n') };
  }
  const r = await db.executeQuery<{ 'QUERY PLAN': [{ Plan: PgPlanNode }] }>(
    CompiledQuery.raw(`explain (format json) ${q.sql}`, [...q.parameters]),
  );
  const root = r.rows[0]?.['QUERY PLAN'][0].Plan;
  if (!root) throw new Error('EXPLAIN returned no plan');
  const accesses: Access[] = [];
  // A Bitmap Heap Scan reads only the pages its Bitmap Index Scans (below it) found: it is
  // recorded as accesses through those indexes, on the heap's table.
  const walk = (n: PgPlanNode, heapTable: string | null) => {
    const type = n['Node Type'];
    const table = n['Relation Name'] ?? heapTable ?? '?';
    if (type !== 'Bitmap Heap Scan' && (n['Relation Name'] !== undefined || n['Index Name'] !== undefined)) {
      accesses.push({
        table,
        index: n['Index Name'] ?? null,
        keyed: n['Index Cond'] !== undefined,
        detail: `${type} ${table} ${n['Index Name'] ?? ''} ${n['Index Cond'] ?? ''}`.trim(),
      });
    }
    for (const c of n.Plans ?? []) walk(c, type === 'Bitmap Heap Scan' ? table : heapTable);
  };
  walk(root, null);
  return { accesses, text: JSON.stringify(root, null, 1) };
}

interface PlanCase {
  name: string;
  /** Runs the app's query (and checks it returns what the seed holds). */
  run(repos: Repos): Promise<void>;
  /** The index the query must be served by (any of these). */
  index: string[];
  /** False when a full, ordered scan of the index is the point (an unfiltered page, bounded by LIMIT). */
  keyed: boolean;
  /** Columns the index must be searched by (all of the query's equality filters). */
  keys?: string[];
}

// Sample keys with rows behind them: client 42, its campaign 42, that campaign's content 42.
const CLIENT = clientOfCampaign(42, SIZE);
const CAMPAIGN = 42;
const CONTENT = 42;
const campaignStatus = campaignStatusOf(CAMPAIGN) as CampaignStatus;
const contentStatus = contentStatusOf(CONTENT) as ContentStatus;
const cursor = { createdAt: '2025-03-01T00:00:00.000Z', id: 1_000_000 };

const CASES: PlanCase[] = [
  {
    name: 'campaigns of a client by status, newest first (page of 20)',
    async run(repos) {
      const rows = await repos.campaigns.list({ clientId: CLIENT, status: campaignStatus }, { limit: 21 });
      expect(rows.map((r) => r.id)).toContain(CAMPAIGN);
      expect(rows.every((r) => r.client_id === CLIENT && r.status === campaignStatus)).toBe(true);
    },
    index: ['idx_campaigns_client_status_created'],
    keyed: true,
    keys: ['client_id', 'status'],
  },
  {
    name: 'campaigns of a client by status, next page (cursor)',
    async run(repos) {
      await repos.campaigns.list({ clientId: CLIENT, status: campaignStatus }, { limit: 21, cursor });
    },
    index: ['idx_campaigns_client_status_created'],
    keyed: true,
    keys: ['client_id', 'status'],
  },
  {
    name: 'campaigns, no filter, newest first',
    async run(repos) {
      const rows = await repos.campaigns.list({}, { limit: 21 });
      expect(rows[0]?.id).toBe(SIZE.campaigns);
    },
    index: ['idx_campaigns_created_at'],
    keyed: false,
  },
  {
    name: 'campaigns, no filter, next page (cursor)',
    async run(repos) {
      const rows = await repos.campaigns.list({}, { limit: 21, cursor });
      expect(rows.length).toBe(21);
    },
    index: ['idx_campaigns_created_at'],
    keyed: true,
  },
  {
    name: 'contents of a campaign by status, newest first',
    async run(repos) {
      const rows = await repos.contents.list({ campaignId: CAMPAIGN, status: contentStatus }, { limit: 21 });
      expect(rows.map((r) => r.id)).toContain(CONTENT);
      expect(rows.every((r) => campaignOfContent(r.id, SIZE) === CAMPAIGN)).toBe(true);
    },
    index: ['idx_contents_campaign_status'],
    keyed: true,
    keys: ['campaign_id', 'status'],
  },
  {
    name: 'contents of a campaign by status, next page (cursor)',
    async run(repos) {
      await repos.contents.list({ campaignId: CAMPAIGN, status: contentStatus }, { limit: 21, cursor });
    },
    index: ['idx_contents_campaign_status'],
    keyed: true,
    keys: ['campaign_id', 'status'],
  },
  {
    name: 'contents of a campaign, newest first',
    async run(repos) {
      const rows = await repos.contents.list({ campaignId: CAMPAIGN }, { limit: 21 });
      expect(rows.length).toBe(SIZE.contentsPerCampaign);
    },
    index: ['idx_contents_campaign_id', 'idx_contents_campaign_status'],
    keyed: true,
    keys: ['campaign_id'],
  },
  {
    name: 'script blocks of a content, in order',
    async run(repos) {
      const rows = await repos.scripts.blocks(CONTENT);
      expect(rows.map((r) => r.sequence)).toEqual([1, 2, 3]);
    },
    index: ['idx_script_blocks_sequence', 'idx_script_blocks_content_id'],
    keyed: true,
    keys: ['content_id'],
  },
  {
    name: 'latest metrics of a content',
    async run(repos) {
      const row = await repos.metrics.latest(CONTENT);
      expect(row?.content_id).toBe(CONTENT);
    },
    index: ['idx_performance_content_id'],
    keyed: true,
    keys: ['content_id'],
  },
  {
    name: 'metrics time series of a content',
    async run(repos) {
      const rows = await repos.metrics.series(CONTENT, { limit: 100 });
      expect(rows.length).toBe(SIZE.metricsPerContent);
    },
    index: ['idx_performance_content_id'],
    keyed: true,
    keys: ['content_id'],
  },
  {
    name: 'similar scripts by platform, best score first',
    async run(repos) {
      const rows = await repos.scripts.similar({ platform: 'tiktok', limit: 10 });
      expect(rows.length).toBe(10);
      const scores = rows.map((r) => r.performance_score);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    },
    index: ['idx_contents_platform_score'],
    keyed: true,
    keys: ['platform'],
  },
];

describe.each(dbBackends())('query plans on %s', (backend) => {
  let handle: DatabaseHandle;

  beforeAll(async () => {
    const config = await freshDatabaseConfig(backend);
    handle = openDatabase(config);
    await migrateToLatest(handle.db, config);
    await seedDatabase(handle.db, handle.dialect, SIZE);
    if (handle.dialect === 'sqlite') await sql`pragma optimize`.execute(handle.db);
  }, 120_000);

  afterAll(async () => {
    await handle?.close();
  });

  /** Runs one app query through the capture plugin and returns its compiled SQL. */
  async function captured(run: (repos: Repos) => Promise<void>): Promise<CompiledQuery> {
    const capture = new QueryCapture();
    const db = handle.db.withPlugin(capture);
    await run(createRepos(db, handle.dialect));
    expect(capture.seen).toHaveLength(1);
    const [q] = capture.seen;
    if (!q) throw new Error('no query captured');
    return db.getExecutor().compileQuery(q.node, q.queryId);
  }

  it.for(CASES.map((c) => [c.name, c] as const))('%s: uses its index, no full table scan', async ([, c]) => {
    const plan = await explain(handle.db, handle.dialect, await captured(c.run));
    const why = `plan on ${backend}:\n${plan.text}`;
    const hit = plan.accesses.find((a) => a.index !== null && c.index.includes(a.index));
    expect(hit, `expected one of ${c.index.join(', ')}; ${why}`).toBeDefined();
    if (c.keyed) expect(hit?.keyed, `index used without a key; ${why}`).toBe(true);
    for (const key of c.keys ?? []) {
      expect(hit?.detail, `index not searched by ${key}; ${why}`).toMatch(new RegExp(`\\b${key} ?=`));
    }
    const fullScans = plan.accesses.filter((a) => a.index === null || (a.index === 'rowid' && !a.keyed));
    expect(fullScans, `full table scan; ${why}`).toEqual([]);
  });

  it('keyset pages (with the created_at bound) return every row once, also when created_at ties', async () => {
    const client = await handle.db
      .insertInto('clients')
      .values({ name: 'Ties', brand_color: null, industry: null, contact_email: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    const at = '2030-01-01T00:00:00.000Z';
    const later = '2030-01-02T00:00:00.000Z';
    const rows = Array.from({ length: 45 }, (_, i) => ({
      client_id: client.id,
      name: `tie ${i}`,
      status: 'active' as const,
      platform: 'youtube' as const,
      language: 'ko',
      created_at: i < 5 ? later : at,
      updated_at: at,
    }));
    await handle.db.insertInto('campaigns').values(rows).execute();
    const repos = createRepos(handle.db, handle.dialect);
    const seen: number[] = [];
    let cursor: { createdAt: string; id: number } | undefined;
    for (let page = 0; page < 10; page++) {
      const got = await repos.campaigns.list(
        { clientId: client.id, status: 'active' },
        { limit: 20, cursor },
      );
      seen.push(...got.map((r) => r.id));
      const last = got[got.length - 1];
      if (got.length < 20 || !last) break;
      cursor = { createdAt: last.created_at, id: last.id };
    }
    const all = await handle.db
      .selectFrom('campaigns')
      .select('id')
      .where('client_id', '=', client.id)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    expect(seen).toEqual(all.map((r) => r.id));
    expect(new Set(seen).size).toBe(45);
  });

  it('the capture sees the SQL the app sends (a query with no index shows up as a full scan)', async () => {
    // Guards the assertions above: an unindexed filter must be reported as a table scan.
    const q = handle.db.selectFrom('contents').select('id').where('title', '=', 'nope').compile();
    const plan = await explain(handle.db, handle.dialect, q);
    expect(plan.accesses.some((a) => a.table === 'contents' && a.index === null)).toBe(true);
  });
});

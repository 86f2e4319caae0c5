/**
 * bench:db: latency of the hot queries, issued through the app's own
 * repositories, on SQLite (a temporary file) and PostgreSQL (a server started
 * for the run), at 1,000,000 contents: 10,000 clients, 100,000 campaigns,
 * 10 contents per campaign, 3 script blocks and 3 metrics rows per content.
 * Then the same queries with their indexes dropped, reported against the
 * indexed figure (`baseline`, `ratio`).
 *
 *   npm run bench:db              full size (several minutes, mostly seeding)
 *   npm run bench:db -- --quick   50,000 contents, under a minute
 *
 * Target: p50 <= 1 ms and p99 <= 5 ms for every query at full size.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import type { DatabaseConfig } from '../src/config/config.js';
import { type DatabaseHandle, openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { createRepos, type Repos } from '../src/db/repos.js';
import type { CampaignStatus, ContentStatus, Dialect } from '../src/db/types.js';
import { createPostgresDatabase, type RunningService, startPostgres } from '../test/support/services.js';
import { emit, isQuick, percentile, printTable } from './lib/report.js';
import {
  campaignOfContent,
  campaignStatusOf,
  clientOfCampaign,
  contentStatusOf,
  type SeedSize,
  seedDatabase,
  seedTotals,
} from './lib/seed.js';

const BENCH = 'db';
const quick = isQuick();

const SIZE: SeedSize = quick
  ? { clients: 500, campaigns: 5_000, contentsPerCampaign: 10, blocksPerContent: 3, metricsPerContent: 3 }
  : {
      clients: 10_000,
      campaigns: 100_000,
      contentsPerCampaign: 10,
      blocksPerContent: 3,
      metricsPerContent: 3,
    };
const TOTALS = seedTotals(SIZE);
const WARMUP = quick ? 200 : 500;
const SAMPLES = quick ? 500 : 2_000;
/** Without indexes a query is a scan: fewer samples, and a time budget per case. */
const NO_INDEX_SAMPLES = quick ? 15 : 40;
const NO_INDEX_BUDGET_MS = quick ? 2_000 : 30_000;

/** Deterministic PRNG (mulberry32) so runs sample the same keys. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface QueryCase {
  name: string;
  /** The indexes that serve this query, dropped for the comparison (never in an app database). */
  indexes: string[];
  /** Runs one query with keys drawn from `rand`; throws when the seed says rows must come back and none do. */
  run(repos: Repos, rand: () => number): Promise<void>;
}

const randomId = (rand: () => number, max: number) => 1 + Math.floor(rand() * max);

function expectRows(n: number, what: string): void {
  if (n === 0) throw new Error(`${what} returned no rows: the seed guarantees some`);
}

/** The four hot queries, as the API issues them (a page of 20 fetches 21 rows to know if there is a next page). */
const CASES: QueryCase[] = [
  {
    name: 'campaigns_by_client_status',
    indexes: [
      'idx_campaigns_client_status_created',
      'idx_campaigns_client_id',
      'idx_campaigns_status',
      'idx_campaigns_created_at',
    ],
    async run(repos, rand) {
      const campaign = randomId(rand, SIZE.campaigns);
      const rows = await repos.campaigns.list(
        {
          clientId: clientOfCampaign(campaign, SIZE),
          status: campaignStatusOf(campaign) as CampaignStatus,
        },
        { limit: 21 },
      );
      expectRows(rows.length, 'campaigns_by_client_status');
    },
  },
  {
    name: 'contents_by_campaign_status',
    indexes: [
      'idx_contents_campaign_id',
      'idx_contents_campaign_status',
      'idx_contents_status',
      'idx_contents_created_at',
    ],
    async run(repos, rand) {
      const content = randomId(rand, TOTALS.contents);
      const rows = await repos.contents.list(
        {
          campaignId: campaignOfContent(content, SIZE),
          status: contentStatusOf(content) as ContentStatus,
        },
        { limit: 21 },
      );
      expectRows(rows.length, 'contents_by_campaign_status');
    },
  },
  {
    name: 'script_blocks_of_content',
    indexes: ['idx_script_blocks_content_id', 'idx_script_blocks_sequence'],
    async run(repos, rand) {
      const rows = await repos.scripts.blocks(randomId(rand, TOTALS.contents));
      expectRows(rows.length, 'script_blocks_of_content');
    },
  },
  {
    name: 'latest_metrics_of_content',
    indexes: ['idx_performance_content_id', 'idx_performance_recorded_at'],
    async run(repos, rand) {
      const row = await repos.metrics.latest(randomId(rand, TOTALS.contents));
      expectRows(row ? 1 : 0, 'latest_metrics_of_content');
    },
  },
];

interface Latency {
  p50: number;
  p99: number;
  samples: number;
}

async function measure(
  repos: Repos,
  c: QueryCase,
  opts: { warmup: number; samples: number; budgetMs: number; seed: number },
): Promise<Latency> {
  const rand = rng(opts.seed);
  for (let i = 0; i < opts.warmup; i++) await c.run(repos, rand);
  const times: number[] = [];
  const deadline = performance.now() + opts.budgetMs;
  while (times.length < opts.samples && (times.length < 3 || performance.now() < deadline)) {
    const t0 = performance.now();
    await c.run(repos, rand);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), samples: times.length };
}

/** The fields every latency line shares. */
function latencyResult(backend: Dialect, name: string, l: Latency) {
  return {
    bench: BENCH,
    case: name,
    backend,
    unit: 'ms',
    samples: l.samples,
    contents: TOTALS.contents,
    campaigns: TOTALS.campaigns,
    // The machine's 1-minute load average: tail latencies on a shared box depend on it.
    load1: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

const log = (msg: string) => process.stderr.write(`[bench:db] ${msg}\n`);

async function runBackend(backend: Dialect, config: DatabaseConfig): Promise<void> {
  const extra = { contents: TOTALS.contents, campaigns: TOTALS.campaigns };
  // Seed on one connection (the seeder tunes it for bulk load), then measure on a fresh one with the app's settings.
  const seeding = openDatabase(config);
  try {
    await migrateToLatest(seeding.db, config);
    const t0 = performance.now();
    let lastLog = 0;
    await seedDatabase(seeding.db, backend, SIZE, {
      onProgress(table, done, total) {
        if (performance.now() - lastLog > 5_000 || done === total) {
          lastLog = performance.now();
          log(`${backend}: seeded ${table} ${done}/${total} (${((lastLog - t0) / 1000).toFixed(0)} s)`);
        }
      },
    });
    emit({
      bench: BENCH,
      case: 'seed',
      backend,
      metric: 'seed_s',
      value: (performance.now() - t0) / 1000,
      unit: 's',
      ...extra,
    });
    // Flush the load now so a checkpoint does not land inside the measurements.
    await sql
      .raw(backend === 'sqlite' ? 'pragma wal_checkpoint(truncate)' : 'checkpoint')
      .execute(seeding.db);
  } finally {
    await seeding.close();
  }

  const handle: DatabaseHandle = openDatabase(config);
  try {
    const repos = createRepos(handle.db, handle.dialect);
    const indexed = new Map<string, Latency>();
    for (const [i, c] of CASES.entries()) {
      const l = await measure(repos, c, { warmup: WARMUP, samples: SAMPLES, budgetMs: 120_000, seed: 1 + i });
      indexed.set(c.name, l);
      const common = latencyResult(backend, c.name, l);
      emit({ ...common, metric: 'p50_ms', value: l.p50 });
      emit({ ...common, metric: 'p99_ms', value: l.p99 });
    }

    log(`${backend}: dropping the indexes for the comparison`);
    for (const c of CASES) {
      for (const index of c.indexes) await sql`drop index if exists ${sql.ref(index)}`.execute(handle.db);
    }
    await sql`analyze`.execute(handle.db);
    for (const [i, c] of CASES.entries()) {
      const base = indexed.get(c.name);
      if (!base) continue;
      const l = await measure(repos, c, {
        warmup: 1,
        samples: NO_INDEX_SAMPLES,
        budgetMs: NO_INDEX_BUDGET_MS,
        seed: 101 + i,
      });
      const common = latencyResult(backend, c.name, l);
      emit({ ...common, metric: 'p50_ms_no_index', value: l.p50, baseline: base.p50 });
      emit({ ...common, metric: 'p99_ms_no_index', value: l.p99, baseline: base.p99 });
    }
  } finally {
    await handle.close();
  }
}

async function main(): Promise<void> {
  log(`${quick ? 'quick' : 'full'} run: ${TOTALS.contents} contents, ${TOTALS.campaigns} campaigns`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ov-bench-db-'));
  let postgres: RunningService | undefined;
  try {
    await runBackend('sqlite', { dialect: 'sqlite', file: path.join(dir, 'bench.db'), busyTimeoutMs: 5_000 });
    postgres = await startPostgres();
    const url = await createPostgresDatabase(postgres.url, 'ov_bench');
    await runBackend('postgres', {
      dialect: 'postgres',
      url,
      poolMax: 10,
      statementTimeoutMs: 0,
      connectTimeoutMs: 5_000,
    });
  } finally {
    if (postgres) await postgres.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    printTable();
  }
}

await main();

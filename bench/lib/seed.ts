/**
 * Fast bulk seeder for benchmarks and query-plan tests. It fills a freshly
 * migrated database through the real schema (checks, foreign keys, the FTS5
 * triggers on SQLite and the generated tsvector columns on PostgreSQL stay in
 * force) with set-based `INSERT ... SELECT` over a generated integer series:
 * a recursive CTE on SQLite, `generate_series` on PostgreSQL. No row crosses
 * into JavaScript, so a million contents take seconds, not hours.
 *
 * The data is deterministic: row `i` of every table is a pure function of `i`
 * (a multiplicative hash picks statuses, platforms and tones), so tests can
 * compute which ids exist and what they hold. Ids are explicit and start at 1;
 * identity sequences are moved past them afterwards so the app can insert.
 *
 * Shape: clients 1..C; campaign i belongs to client ((i-1) mod C)+1, so a
 * client's campaigns are spread over time; content j belongs to campaign
 * ((j-1) mod K)+1 (likewise spread); each content has `blocksPerContent`
 * script blocks (sequence 1..B, one script document built from them) and
 * `metricsPerContent` metrics rows, one a day after the content was created,
 * with the content's denormalised latest score set to match the newest row.
 */
import { type Kysely, type RawBuilder, sql } from 'kysely';
import {
  CAMPAIGN_STATUSES,
  CONTENT_STATUSES,
  PLATFORMS,
  type Database,
  type Dialect,
} from '../../src/db/types.js';

export interface SeedSize {
  clients: number;
  campaigns: number;
  /** Contents per campaign (total contents = campaigns × this). */
  contentsPerCampaign: number;
  blocksPerContent: number;
  metricsPerContent: number;
}

export interface SeedCounts {
  clients: number;
  campaigns: number;
  contents: number;
  scriptBlocks: number;
  metrics: number;
}

export interface SeedOptions {
  /** Rows per INSERT ... SELECT statement (progress granularity). Default 250,000. */
  chunkRows?: number;
  /** Called after every statement with the table and the rows inserted so far into it. */
  onProgress?: (table: string, done: number, total: number) => void;
}

/** 2025-01-01T00:00:00Z, the time of campaign 0. */
const BASE_EPOCH_S = 1_735_689_600;
const CAMPAIGN_STEP_S = 60;
const CONTENT_STEP_S = 3_600;
const METRIC_STEP_S = 86_400;

export const TONES = ['friendly', 'energetic', 'calm', 'professional', 'playful'] as const;
const INDUSTRIES = ['beauty', 'food', 'fintech', 'travel', 'education', 'fashion'] as const;
const PHRASES = [
  '안녕하세요 오늘은 새로운 제품을 소개합니다',
  '지금 바로 확인해 보세요 한정 수량 이벤트',
  '여름 시즌 특가 최대 50% 할인',
  '구독과 좋아요 부탁드립니다',
  '전문가가 알려주는 피부 관리 비법',
  'morning routine with our new serum',
  '빠르고 간편한 모바일 결제 서비스',
  '제주도 여행 브이로그 숨은 명소',
] as const;

/** Deterministic 16-bit hash of an integer SQL expression, the same on both dialects. */
function hash(expr: string, salt: number): string {
  return `((((${expr}) + ${salt}) * 2654435761) % 4294967296 / 65536)`;
}

/** `values[hash(expr) mod n]` as a CASE expression. */
function pick(expr: string, salt: number, values: readonly string[]): string {
  const arms = values.map((v, i) => `when ${i} then '${v.replace(/'/g, "''")}'`).join(' ');
  return `(case ${hash(expr, salt)} % ${values.length} ${arms} end)`;
}

/** Platform of campaign `expr`: contents inherit it. */
const campaignPlatform = (expr: string) => pick(expr, 11, PLATFORMS);
/** Performance score (0..100) of metrics row `k` (0-based) of content `expr`. */
const score = (content: string, k: string) => `(((${content}) * 37 + (${k}) * 13) % 1001) / 10.0`;

export const campaignStatusOf = (id: number): string => pickJs(id, 7, CAMPAIGN_STATUSES);
export const campaignPlatformOf = (id: number): string => pickJs(id, 11, PLATFORMS);
export const contentStatusOf = (id: number): string => pickJs(id, 5, CONTENT_STATUSES);
export const clientOfCampaign = (campaignId: number, size: SeedSize): number =>
  ((campaignId - 1) % size.clients) + 1;
export const campaignOfContent = (contentId: number, size: SeedSize): number =>
  ((contentId - 1) % size.campaigns) + 1;

function pickJs<T extends string>(i: number, salt: number, values: readonly T[]): T {
  // BigInt: the product overflows 2^53.
  const h = (((BigInt(i) + BigInt(salt)) * 2654435761n) % 4294967296n) / 65536n;
  return values[Number(h % BigInt(values.length))] as T;
}

interface Dialected {
  /** A FROM item producing integers lo..hi in a column `i`. */
  series(lo: number, hi: number): string;
  /** Epoch seconds expression -> the timestamp column's value. */
  time(epochExpr: string): string;
  concat(parts: string[]): string;
}

const SQLITE: Dialected = {
  series: (lo, hi) =>
    `(with recursive s(i) as (select ${lo} union all select i + 1 from s where i < ${hi}) select i from s) as s`,
  // The app stores ISO 8601 with milliseconds and Z (Date#toISOString); %f is SS.SSS.
  time: (e) => `strftime('%Y-%m-%dT%H:%M:%fZ', ${e}, 'unixepoch')`,
  concat: (parts) => parts.join(' || '),
};

const POSTGRES: Dialected = {
  series: (lo, hi) => `generate_series(${lo}::bigint, ${hi}::bigint) as s(i)`,
  time: (e) => `to_timestamp(${e})`,
  concat: (parts) => parts.map((p) => `(${p})::text`).join(' || '),
};

export function seedTotals(size: SeedSize): SeedCounts {
  const contents = size.campaigns * size.contentsPerCampaign;
  return {
    clients: size.clients,
    campaigns: size.campaigns,
    contents,
    scriptBlocks: contents * size.blocksPerContent,
    metrics: contents * size.metricsPerContent,
  };
}

/**
 * Seeds an empty, migrated database. Throws if `clients` already has rows.
 * Leaves the planner statistics fresh (`ANALYZE` on SQLite, `VACUUM ANALYZE` on PostgreSQL).
 */
export async function seedDatabase(
  db: Kysely<Database>,
  dialect: Dialect,
  size: SeedSize,
  options: SeedOptions = {},
): Promise<SeedCounts> {
  const existing = await db
    .selectFrom('clients')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  if (Number(existing.n) > 0) throw new Error('seedDatabase needs an empty database');
  if (size.clients < 1 || size.campaigns < 1)
    throw new Error('seedDatabase needs at least one client and campaign');

  const d = dialect === 'sqlite' ? SQLITE : POSTGRES;
  const totals = seedTotals(size);
  const chunk = options.chunkRows ?? 250_000;
  const run = (q: RawBuilder<unknown> | string) => (typeof q === 'string' ? sql.raw(q) : q).execute(db);

  // Bulk-load settings for this SQLite connection only; the previous values are restored below.
  const bulkPragmas: Record<string, string> = {
    synchronous: 'off',
    cache_size: '-262144',
    temp_store: 'memory',
  };
  const restore: string[] = [];
  if (dialect === 'sqlite') {
    for (const [name, value] of Object.entries(bulkPragmas)) {
      const r = await sql.raw<Record<string, number>>(`pragma ${name}`).execute(db);
      const before = r.rows[0]?.[name];
      if (before !== undefined) restore.push(`pragma ${name} = ${before}`);
      await run(`pragma ${name} = ${value}`);
    }
  }

  /** Runs `build(lo, hi)` over 1..total in chunks. */
  const chunked = async (table: string, total: number, build: (lo: number, hi: number) => string) => {
    for (let lo = 1; lo <= total; lo += chunk) {
      const hi = Math.min(total, lo + chunk - 1);
      await run(build(lo, hi));
      options.onProgress?.(table, hi, total);
    }
  };

  try {
    const C = size.clients;
    const K = size.campaigns;
    const N = totals.contents;
    const B = size.blocksPerContent;
    const M = size.metricsPerContent;

    await chunked('clients', C, (lo, hi) => {
      const created = d.time(`${BASE_EPOCH_S} - 86400 + i`);
      return `insert into clients (id, name, brand_color, industry, contact_email, created_at, updated_at)
        select i, ${d.concat([`'Client '`, 'i'])}, '#1A2B3C', ${pick('i', 3, INDUSTRIES)},
          ${d.concat([`'owner'`, 'i', `'@example.com'`])}, ${created}, ${created}
        from ${d.series(lo, hi)}`;
    });

    await chunked('campaigns', K, (lo, hi) => {
      const created = d.time(`${BASE_EPOCH_S} + i * ${CAMPAIGN_STEP_S}`);
      return `insert into campaigns (id, client_id, name, description, status, platform, concept_tone,
          concept_style, voice, language, target_duration_s, created_at, updated_at)
        select i, ((i - 1) % ${C}) + 1, ${d.concat([`'Campaign '`, 'i'])}, null,
          ${pick('i', 7, CAMPAIGN_STATUSES)}, ${campaignPlatform('i')}, ${pick('i', 13, TONES)},
          'minimal', 'ko-KR-standard', 'ko', 30 + (i % 4) * 15, ${created}, ${created}
        from ${d.series(lo, hi)}`;
    });

    // Content j: campaign c = ((j-1) mod K)+1, its k-th content (k = (j-1) div K).
    const camp = `(((i - 1) % ${K}) + 1)`;
    const nth = `((i - 1) / ${K})`;
    const contentCreated = (c: string, k: string) =>
      `${BASE_EPOCH_S} + ${c} * ${CAMPAIGN_STEP_S} + (${k} + 1) * ${CONTENT_STEP_S}`;
    await chunked('contents', N, (lo, hi) => {
      const created = d.time(contentCreated(camp, nth));
      const latestScore = M > 0 ? score('i', String(M - 1)) : 'null';
      const latestAt = M > 0 ? d.time(`${contentCreated(camp, nth)} + ${M * METRIC_STEP_S}`) : 'null';
      return `insert into contents (id, campaign_id, title, platform, status, keywords,
          latest_performance_score, latest_recorded_at, created_at, updated_at)
        select i, ${camp}, ${d.concat([pick('i', 17, PHRASES), `' #'`, 'i'])}, ${campaignPlatform(camp)},
          ${pick('i', 5, CONTENT_STATUSES)},
          ${d.concat([`'["'`, pick('i', 19, INDUSTRIES), `'","'`, pick('i', 23, TONES), `'"]'`])},
          ${latestScore}, ${latestAt}, ${created}, ${created}
        from ${d.series(lo, hi)}`;
    });

    if (B > 0) {
      // Block b: content ((b-1) div B)+1, sequence ((b-1) mod B)+1: a content's blocks are stored together.
      const content = `(((i - 1) / ${B}) + 1)`;
      const seq = `(((i - 1) % ${B}) + 1)`;
      const kind = `(case when ${seq} = 1 then 'hook' when ${seq} = ${B} then 'cta' else 'body' end)`;
      await chunked('script_blocks', totals.scriptBlocks, (lo, hi) => {
        const created = d.time(`${BASE_EPOCH_S} + i`);
        return `insert into script_blocks (content_id, sequence, kind, text, subtitle_text, duration_s,
            background, transition, created_at, updated_at)
          select ${content}, ${seq}, ${kind}, ${d.concat([pick('i', 29, PHRASES), `' '`, content])}, null,
            2.5 + (i % 5) * 0.5, 'gradient', 'fade', ${created}, ${created}
          from ${d.series(lo, hi)}`;
      });
      const agg =
        dialect === 'sqlite'
          ? `group_concat(text, char(10) order by sequence)`
          : `string_agg(text, E'\\n' order by sequence)`;
      await chunked('script_documents', N, (lo, hi) => {
        return `insert into script_documents (content_id, body, updated_at)
          select content_id, ${agg}, max(updated_at) from script_blocks
          where content_id between ${lo} and ${hi} group by content_id order by content_id`;
      });
    }

    if (M > 0) {
      // Metrics row m: content ((m-1) mod N)+1, its k-th day (k = (m-1) div N): a day's rows are stored together.
      const content = `(((i - 1) % ${N}) + 1)`;
      const k = `((i - 1) / ${N})`;
      const cCamp = `(((${content} - 1) % ${K}) + 1)`;
      const cNth = `((${content} - 1) / ${K})`;
      await chunked('performance_metrics', totals.metrics, (lo, hi) => {
        const recorded = d.time(`${contentCreated(cCamp, cNth)} + (${k} + 1) * ${METRIC_STEP_S}`);
        const views = `(1000 + ${hash('i', 31)} * 3)`;
        return `insert into performance_metrics (content_id, recorded_at, views, likes, comments, shares,
            watch_time_s, ctr, engagement_rate, performance_score, created_at, updated_at)
          select ${content}, ${recorded}, ${views}, ${views} / 20, ${views} / 200, ${views} / 500,
            ${views} * 12.5, (${hash('i', 37)} % 100) / 1000.0, 0.05 + (i % 10) / 100.0,
            ${score(content, k)}, ${recorded}, ${recorded}
          from ${d.series(lo, hi)}`;
      });
    }

    if (dialect === 'postgres') {
      for (const t of ['clients', 'campaigns', 'contents', 'script_blocks', 'performance_metrics']) {
        await run(
          `select setval(pg_get_serial_sequence('${t}', 'id'), greatest((select max(id) from ${t}), 1))`,
        );
      }
      await run('vacuum analyze');
    } else {
      await run('analyze');
    }
  } finally {
    for (const statement of restore) await run(statement);
  }
  return totals;
}

/**
 * Property-based test of every documented route, driven by the app's own OpenAPI document,
 * on each database. Two parts:
 *
 * 1. A sweep: each path parameter, query parameter and body field (nested ones too) gets each
 *    of its boundary values (minimum − 1, maximum + 1, lengths past the limits, ...) and each
 *    hostile value (the non-finite strings and numbers, leap seconds, lone surrogates, deep
 *    nesting, bidirectional overrides, wrong types, sloppy integer spellings, broken
 *    percent-encoding), everything else valid; whole bodies are replaced by hostile ones too.
 * 2. Random requests drawn from the schemas by fast-check, mostly valid, often subtly wrong.
 *
 * The property: never a 5xx; every error has the catalogue's JSON shape; and an error writes
 * nothing (the row count of every table, and the number of tasks, is what it was before).
 * The number of requests sent is printed.
 */
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends } from '../support/backends.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { type JsonSchema, openApiRoutes, type RouteInfo } from '../support/openapi-routes.js';

const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 30);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

/** JSON text sent as is (for what JSON.stringify cannot write: 1e309, deep nesting). */
class RawJson {
  constructor(readonly text: string) {}
}
function toJson(v: unknown): string {
  if (v instanceof RawJson) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (typeof v === 'object' && v !== null)
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}
const deep = (n: number) => new RawJson('['.repeat(n) + ']'.repeat(n));

const LEAP = '2016-12-31T23:59:60Z';
/** Body values that have broken real servers; every field gets each of them. */
const HOSTILE_JSON: unknown[] = [
  'Infinity',
  '-Infinity',
  '1e309',
  'NaN',
  LEAP,
  '2016-12-31T23:59:60.5+09:00',
  '\ud800',
  'a\udfffb',
  '',
  ' ',
  '\u0000',
  'Acme\u202Egnp.exe',
  '\u200B',
  '\u3164',
  "'; drop table campaigns; --",
  'NEAR(a b) OR "*',
  'x'.repeat(10_001),
  '9'.repeat(40),
  true,
  null,
  [],
  {},
  [1, 'a'],
  { a: 1 },
  0,
  -1,
  0.5,
  2 ** 31,
  2 ** 53,
  -(2 ** 53),
  1e308,
  new RawJson('1e309'),
  new RawJson('-1e309'),
  new RawJson('"\\udc00"'),
  deep(100),
  deep(20_000),
];
/** Path and query spellings (already percent-encoded). */
const HOSTILE_URL: string[] = [
  'Infinity',
  '-Infinity',
  '1e309',
  'NaN',
  '1.0',
  '%2B1',
  '%201',
  '1%20',
  '1e0',
  '0x10',
  '012',
  '-0',
  '-1',
  '0',
  '2147483648',
  '9'.repeat(40),
  encodeURIComponent(LEAP),
  '%ED%A0%80',
  '%E0%A4%A',
  '%00',
  '%FF%FE',
  'true',
  encodeURIComponent('\u202Eevil'),
  'x'.repeat(300),
];

const typeOf = (s: JsonSchema | undefined) =>
  s === undefined ? undefined : Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;

/** Values at and just past the schema's limits. */
function boundaries(s: JsonSchema): unknown[] {
  const out: unknown[] = [];
  const t = typeOf(s);
  if (t === 'integer' || t === 'number') {
    for (const b of [s.minimum, s.maximum, s.exclusiveMinimum as number | undefined]) {
      if (b === undefined) continue;
      out.push(b, b - 1, b + 1, b + 0.5);
    }
  } else if (t === 'string') {
    if (s.minLength) out.push('x'.repeat(s.minLength - 1));
    if (s.maxLength) out.push('x'.repeat(s.maxLength), 'x'.repeat(s.maxLength + 1));
    if (s.enum) out.push(String(s.enum[0]).toUpperCase(), `${String(s.enum[0])} `);
  } else if (t === 'array') {
    if (s.minItems) out.push([]);
    if (s.maxItems !== undefined) out.push(Array.from({ length: s.maxItems + 1 }, () => validOf(s.items)));
  }
  return out;
}

/** One valid value for a schema (ids are 1, which the seed rows have). */
function validOf(s: JsonSchema | undefined): unknown {
  if (!s) return {};
  if (s.enum) return s.enum[0];
  if (s.anyOf) return validOf(s.anyOf.find((x) => x.type !== 'null'));
  switch (typeOf(s)) {
    case 'integer':
    case 'number': {
      const lo = s.minimum ?? ((s.exclusiveMinimum as number | undefined) ?? 0) + 1;
      return s.maximum !== undefined && lo > s.maximum ? s.maximum : Math.max(lo, 1);
    }
    case 'boolean':
      return false;
    case 'array':
      return Array.from({ length: Math.max(1, s.minItems ?? 0) }, () => validOf(s.items));
    case 'object':
      return Object.fromEntries((s.required ?? []).map((k) => [k, validOf(s.properties?.[k])] as const));
    case 'string': {
      if (s.format === 'date-time') return '2026-01-01T00:00:00Z';
      if (s.format === 'date') return '2026-01-01';
      if (s.format === 'email') return 'a@example.com';
      const pattern = typeof s.pattern === 'string' ? new RegExp(s.pattern, 'u') : undefined;
      const fits = ['x', 'ko', '#112233', '2026-01-01', 'script', 'abc'].find(
        (c) =>
          (pattern?.test(c) ?? true) && c.length >= (s.minLength ?? 0) && c.length <= (s.maxLength ?? 1e9),
      );
      return fits ?? 'x';
    }
    default:
      return {};
  }
}

/** Paths to every field of a body schema: object properties and the first item of arrays. */
function fieldPaths(
  s: JsonSchema | undefined,
  at: (string | number)[] = [],
  depth = 0,
): [(string | number)[], JsonSchema][] {
  if (!s || depth > 4) return [];
  const t = typeOf(s);
  if (t === 'object')
    return Object.entries(s.properties ?? {}).flatMap(([k, v]) => [
      [[...at, k], v] as [(string | number)[], JsonSchema],
      ...fieldPaths(v, [...at, k], depth + 1),
    ]);
  if (t === 'array' && s.items) return [[[...at, 0], s.items], ...fieldPaths(s.items, [...at, 0], depth + 1)];
  return [];
}
function withField(base: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string | number;
    node[key] ??= typeof path[i + 1] === 'number' ? [] : {};
    node = node[key] as Record<string | number, unknown>;
  }
  node[path[path.length - 1] as string | number] = value;
  return copy;
}

// Random part: schema-shaped values with hostile ones mixed in.
const hostileArb = fc.constantFrom(...HOSTILE_JSON);
function arbOf(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 4) return fc.jsonValue({ maxDepth: 2 });
  let right: fc.Arbitrary<unknown>;
  if (s.enum) right = fc.constantFrom(...s.enum);
  else if (s.anyOf) right = fc.oneof(...s.anyOf.map((x) => arbOf(x, depth + 1)));
  else {
    switch (typeOf(s)) {
      case 'integer':
        right = fc.integer({ min: s.minimum ?? -1e6, max: Math.min(s.maximum ?? 1e6, 2 ** 31) });
        break;
      case 'number':
        right = fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
        break;
      case 'boolean':
        right = fc.boolean();
        break;
      case 'array':
        right = fc.array(arbOf(s.items, depth + 1), {
          minLength: s.minItems ?? 0,
          maxLength: Math.min(s.maxItems ?? 5, 5),
        });
        break;
      case 'object': {
        const props = s.properties ?? {};
        right = fc.record(
          Object.fromEntries(Object.entries(props).map(([k, v]) => [k, arbOf(v, depth + 1)] as const)),
          { requiredKeys: (s.required ?? []).filter((k) => k in props) },
        );
        break;
      }
      default:
        right = fc.oneof(
          fc.constant(validOf(s)),
          fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 60) }),
          fc.string({ unit: 'grapheme', maxLength: 40 }),
        );
    }
  }
  return fc.oneof({ weight: 5, arbitrary: right }, { weight: 1, arbitrary: hostileArb });
}
/** A value as it travels in a URL. */
const urlValue = (v: unknown) => encodeURIComponent((typeof v === 'string' ? v : toJson(v)).toWellFormed());

interface Request {
  params: Record<string, string>;
  query: string;
  /** The body as sent, or undefined for none. */
  body?: string;
  contentType?: string;
}

describe.each(dbBackends())('every route, every field, hostile values, on %s', (backend) => {
  let t: TestApp;
  let routes: RouteInfo[];
  let taskId: string;
  let blockId: number;
  let countRows: () => Promise<string>;
  beforeAll(async () => {
    t = await makeTestApp(backend);
    routes = (await openApiRoutes(t.app)).filter((r) => r.path.startsWith('/api/v1/'));
    // Bodiless deletes last, so the rows the other routes use live until the end.
    routes.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    const post = async (url: string, payload: unknown) =>
      (
        await t.app.inject({
          method: 'POST',
          url: `/api/v1${url}`,
          headers: t.as('admin'),
          payload: payload as object,
        })
      ).json() as Record<string, unknown>;
    // Rows with id 1 (client, campaign, content), a script block, metrics, and a delayed task.
    const client = await post('/clients', { name: 'c' });
    const campaign = await post('/campaigns', {
      client_id: client.id,
      name: 'x',
      platform: 'youtube',
      concept_tone: 'x',
    });
    const content = await post(`/campaigns/${String(campaign.id)}/contents`, { title: 'x', keywords: ['x'] });
    const script = (
      await t.app.inject({
        method: 'PUT',
        url: `/api/v1/contents/${String(content.id)}/script`,
        headers: t.as('admin'),
        payload: { blocks: [{ kind: 'hook', text: 'x' }] },
      })
    ).json() as { blocks: { id: number }[] };
    blockId = script.blocks[0]?.id as number;
    await post(`/contents/${String(content.id)}/metrics`, {
      metrics: [{ recorded_at: '2026-01-01T00:00:00Z', views: 10, likes: 1, comments: 0, shares: 0 }],
    });
    taskId = (await post('/tasks', { name: 'diagnostics.noop', delay_ms: 3_600_000 })).task_id as string;
    expect([client.id, campaign.id, content.id]).toEqual([1, 1, 1]);

    const db = t.system.database.db;
    const tables = (
      t.system.database.dialect === 'sqlite'
        ? await sql<{
            name: string;
          }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db)
        : await sql<{
            name: string;
          }>`select tablename as name from pg_tables where schemaname = current_schema()`.execute(db)
    ).rows.map((r) => r.name);
    const union = sql.join(
      tables.map((name) => sql`select ${name} as t, count(*) as n from ${sql.table(name)}`),
      sql` union all `,
    );
    countRows = async () => {
      const rows = (await sql<{ t: string; n: number | string }>`${union}`.execute(db)).rows;
      const tasks = (await t.system.jobs!.admin.counts()).reduce(
        (sum, q) => sum + Object.values(q.counts).reduce((a, b) => a + b, 0),
        0,
      );
      return `${rows.map((r) => `${r.t}=${String(r.n)}`).join(' ')} tasks=${tasks}`;
    };
  });
  afterAll(async () => t.close());

  /** The value of a path parameter that names a real row, or none where acting on it would end the test. */
  function baseParam(r: RouteInfo, name: string, s: JsonSchema): string {
    if (s.enum) return String(s.enum[0]);
    const harmless =
      r.method === 'DELETE' || r.path.startsWith('/api/v1/keys/') || r.path.endsWith('/events');
    if (typeOf(s) === 'integer') return harmless ? '999999' : name === 'blockId' ? String(blockId) : '1';
    return r.path.startsWith('/api/v1/tasks/') && !harmless ? taskId : 'nope';
  }

  let sent = 0;
  let fiveXx = 0;
  const failures: string[] = [];
  let rowsBefore = '';

  /** Sends one request and checks the property; returns false when it broke. */
  async function check(r: RouteInfo, req: Request): Promise<boolean> {
    const path = r.path.replace(/\{(\w+)\}/g, (_, p: string) => req.params[p] ?? '1');
    const url = `${path}${req.query ? `?${req.query}` : ''}`;
    const res = await t.app.inject({
      method: r.method,
      url,
      headers: {
        ...t.as('admin'),
        ...(req.body !== undefined ? { 'content-type': req.contentType ?? 'application/json' } : {}),
      },
      ...(req.body !== undefined ? { payload: req.body } : {}),
    });
    sent += 1;
    const rowsAfter = await countRows();
    const what = () =>
      `${r.method} ${url.slice(0, 200)} ${(req.body ?? '').slice(0, 200)} -> ${res.statusCode} ${res.body.slice(0, 200)}`;
    let ok = true;
    if (res.statusCode >= 500) {
      fiveXx += 1;
      failures.push(`5xx: ${what()}`);
      ok = false;
    } else if (res.statusCode >= 400) {
      const err = (res.json() as { error?: { code?: unknown; message?: unknown } }).error;
      if (typeof err?.code !== 'string' || typeof err.message !== 'string') {
        failures.push(`error shape: ${what()}`);
        ok = false;
      }
      if (rowsAfter !== rowsBefore) {
        failures.push(`wrote on error: ${what()}\n  before ${rowsBefore}\n  after  ${rowsAfter}`);
        ok = false;
      }
    }
    rowsBefore = rowsAfter;
    return ok;
  }

  it('sweeps every parameter and body field through its boundary and hostile values', async () => {
    rowsBefore = await countRows();
    for (const r of routes) {
      const params = Object.fromEntries(
        r.parameters.filter((p) => p.in === 'path').map((p) => [p.name, baseParam(r, p.name, p.schema)]),
      );
      const base = r.body ? validOf(r.body) : undefined;
      const body = base === undefined ? undefined : toJson(base);
      const send = (over: Partial<Request>) =>
        check(r, { params, query: '', ...(body !== undefined ? { body } : {}), ...over });
      await send({});
      for (const p of r.parameters) {
        const values = [...HOSTILE_URL, ...boundaries(p.schema).map(urlValue)];
        for (const v of values) {
          if (p.in === 'path') await send({ params: { ...params, [p.name]: v } });
          else await send({ query: `${encodeURIComponent(p.name)}=${v}` });
        }
        if (p.in === 'query')
          await send({
            query: `${p.name}=${urlValue(validOf(p.schema))}&${p.name}=${urlValue(validOf(p.schema))}`,
          });
      }
      if (!['POST', 'PUT', 'PATCH'].includes(r.method)) continue;
      for (const [path, s] of fieldPaths(r.body)) {
        for (const v of [...HOSTILE_JSON, ...boundaries(s)])
          await send({ body: toJson(withField(base, path, v)) });
      }
      for (const v of HOSTILE_JSON) await send({ body: toJson(v) });
      await send({ body: toJson(withField(base ?? {}, ['unexpected'], 1)) });
      await send({ body: '' });
      await send({ body: '{"a":' });
      await send({ body: toJson(base ?? {}), contentType: 'text/plain' });
    }
    console.log(`[property ${backend}] sweep: ${sent} requests, ${fiveXx} 5xx`);
    expect(failures).toEqual([]);
  }, 240_000);

  it('holds for random requests drawn from the schemas', async () => {
    const before = sent;
    rowsBefore = await countRows();
    for (const r of routes) {
      const pathArb = (name: string, s: JsonSchema) =>
        fc.oneof(
          { weight: 3, arbitrary: fc.constant(baseParam(r, name, s)) },
          { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_URL) },
          { weight: 1, arbitrary: arbOf(s).map(urlValue) },
        );
      const paramArbs = Object.fromEntries(
        r.parameters.filter((p) => p.in === 'path').map((p) => [p.name, pathArb(p.name, p.schema)]),
      );
      const queryArb = fc
        .tuple(
          ...r.parameters
            .filter((p) => p.in === 'query')
            .map((p) =>
              fc.option(
                fc
                  .oneof(arbOf(p.schema).map(urlValue), fc.constantFrom(...HOSTILE_URL))
                  .map((v) => `${p.name}=${v}`),
                { nil: undefined },
              ),
            ),
        )
        .map((parts) => parts.filter((x) => x !== undefined).join('&'));
      const hasBody = ['POST', 'PUT', 'PATCH'].includes(r.method);
      const arb = fc.record({
        params: fc.record(paramArbs),
        query: queryArb,
        body: hasBody
          ? fc
              .oneof(
                { weight: 5, arbitrary: arbOf(r.body) },
                { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
              )
              .map(toJson)
          : fc.constant(undefined),
      });
      await fc
        .assert(
          fc.asyncProperty(arb, async (req) =>
            check(r, {
              params: req.params as Record<string, string>,
              query: req.query,
              ...(req.body !== undefined ? { body: req.body } : {}),
            }),
          ),
          { numRuns: RUNS_PER_ROUTE, seed: SEED },
        )
        .catch((err: unknown) => failures.push(String(err).slice(0, 1500)));
    }
    console.log(`[property ${backend}] random (seed ${SEED}): ${sent - before} requests, ${fiveXx} 5xx`);
    expect(failures).toEqual([]);
  }, 240_000);
});

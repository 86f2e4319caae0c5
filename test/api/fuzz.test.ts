/**
 * Property-based fuzzing of every documented route: bodies, query strings and path
 * parameters drawn from the route's own schema (mostly valid, often subtly wrong)
 * and from arbitrary JSON. The property: never a 5xx, and every error has the
 * catalogue's JSON shape.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbBackends } from '../support/backends.js';
import { makeTestApp, type TestApp } from '../support/app.js';
import { type JsonSchema, openApiRoutes, type RouteInfo } from '../support/openapi-routes.js';

const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 40);

/** Strings that have broken real servers: NULs, lone surrogates, SQL and FTS syntax, huge numbers. */
const nastyString = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  "'; drop table campaigns; --",
  '"*) OR (',
  'NEAR(a b)',
  '%_\\',
  '9'.repeat(40),
  '-1',
  '1e309',
  'NaN',
  '2026-02-30T25:61:00Z',
  '../../etc/passwd',
  '한국어 텍스트 🎬',
  'x'.repeat(6000),
);

const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  nastyString,
);
const anyNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.constantFrom(0, -1, 2_147_483_648, Number.MAX_SAFE_INTEGER, 1e308, -1e308, 0.5),
);

/** A value for a schema: valid most of the time, with edge cases and wrong types mixed in. */
function fromSchema(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 4) return fc.jsonValue({ maxDepth: 2 });
  const wrong = fc.oneof(
    anyString,
    anyNumber,
    fc.boolean(),
    fc.constant(null),
    fc.constant([]),
    fc.constant({}),
  );
  let right: fc.Arbitrary<unknown>;
  if (s.enum) right = fc.constantFrom(...s.enum);
  else if (s.anyOf) right = fc.oneof(...s.anyOf.map((x) => fromSchema(x, depth + 1)));
  else {
    const type = Array.isArray(s.type) ? s.type[0] : s.type;
    switch (type) {
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
        right = fc.array(fromSchema(s.items, depth + 1), {
          minLength: s.minItems ?? 0,
          maxLength: Math.min(s.maxItems ?? 5, 5),
        });
        break;
      case 'object': {
        const props = s.properties ?? {};
        const required = new Set(s.required ?? []);
        const entries = Object.entries(props).map(([k, v]) => [k, fromSchema(v, depth + 1)] as const);
        right = fc
          .record(Object.fromEntries(entries), { requiredKeys: [...required].filter((k) => k in props) })
          .chain((obj) =>
            fc.oneof(
              { weight: 4, arbitrary: fc.constant(obj) },
              { weight: 1, arbitrary: fc.constant({ ...obj, unexpected: 1 }) },
            ),
          );
        break;
      }
      default:
        right =
          s.format === 'date-time'
            ? fc.date({ noInvalidDate: true }).map((d) => d.toISOString())
            : s.format === 'date'
              ? fc.date({ noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10))
              : fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 60) });
    }
  }
  return fc.oneof({ weight: 6, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

const pathValue = fc.oneof(
  fc.integer({ min: 1, max: 50 }).map(String),
  fc.constantFrom(
    '0',
    '-1',
    '1.5',
    'abc',
    '99999999999999999999',
    '%00',
    '..%2F..%2Fetc',
    '1;drop',
    '%E2%82%AC',
  ),
);

/** Percent-encodes any string, lone surrogates included (as U+FFFD), for the URL. */
const enc = (v: unknown) => encodeURIComponent(String(v).toWellFormed());

function queryString(r: RouteInfo): fc.Arbitrary<string> {
  const q = r.parameters.filter((p) => p.in === 'query');
  const parts = q.map((p) =>
    fc.option(
      fromSchema(p.schema).map((v) => `${enc(p.name)}=${enc(v)}`),
      { nil: undefined },
    ),
  );
  const extra = fc.option(
    fc.oneof(
      anyString.map((v) => `zz=${enc(v)}`),
      // Raw bytes that are not UTF-8, and broken escapes.
      fc.constantFrom('q=%ED%A0%80', 'q=%FF%FE', 'limit=%', 'cursor=%ZZ', 'status[]=a&status[]=b'),
    ),
    { nil: undefined, freq: 8 },
  );
  return fc
    .tuple(fc.tuple(...parts), extra)
    .map(([ps, e]) => [...ps, e].filter((x): x is string => x !== undefined).join('&'));
}

describe.each(dbBackends())('fuzzing every route on %s', (backend) => {
  let t: TestApp;
  let routes: RouteInfo[];
  beforeAll(async () => {
    t = await makeTestApp(backend);
    routes = (await openApiRoutes(t.app)).filter((r) => r.path.startsWith('/api/v1/'));
    // Some real rows, so valid-looking ids reach the handlers and the database.
    for (let i = 0; i < 3; i++) {
      const c = await t.app.inject({
        method: 'POST',
        url: '/api/v1/clients',
        headers: t.as('admin'),
        payload: { name: `c${i}` },
      });
      const camp = await t.app.inject({
        method: 'POST',
        url: '/api/v1/campaigns',
        headers: t.as('admin'),
        payload: { client_id: c.json().id, name: 'x', platform: 'youtube' },
      });
      await t.app.inject({
        method: 'POST',
        url: `/api/v1/campaigns/${camp.json().id}/contents`,
        headers: t.as('admin'),
        payload: { title: 't' },
      });
    }
  });
  afterAll(async () => t.close());

  it('never answers 5xx and always uses the error shape', async () => {
    const failures: string[] = [];
    for (const r of routes) {
      const arb = fc.record({
        params: fc.array(pathValue, { minLength: 3, maxLength: 3 }),
        query: queryString(r),
        body: fc.oneof(
          { weight: 5, arbitrary: fromSchema(r.body) },
          { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
        ),
      });
      await fc
        .assert(
          fc.asyncProperty(arb, async ({ params, query, body }) => {
            let i = 0;
            const path = r.path.replace(/\{\w+\}/g, () => params[i++ % params.length] ?? '1');
            const res = await t.app.inject({
              method: r.method,
              url: `${path}${query ? `?${query}` : ''}`,
              headers: t.as('admin'),
              ...(r.method === 'GET' || r.method === 'DELETE'
                ? {}
                : {
                    payload: JSON.stringify(body),
                    headers: { ...t.as('admin'), 'content-type': 'application/json' },
                  }),
            });
            if (res.statusCode >= 500) {
              failures.push(
                `${r.method} ${path}?${query} ${JSON.stringify(body).slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`,
              );
              return false;
            }
            if (res.statusCode >= 400) {
              const err = (res.json() as { error?: { code?: unknown; message?: unknown } }).error;
              if (typeof err?.code !== 'string' || typeof err.message !== 'string') {
                failures.push(`${r.method} ${path}: bad error shape ${res.body.slice(0, 200)}`);
                return false;
              }
            }
            return true;
          }),
          { numRuns: RUNS_PER_ROUTE, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
        )
        .catch((err: unknown) => failures.push(String(err).slice(0, 1500)));
    }
    expect(failures).toEqual([]);
  }, 180_000);
});

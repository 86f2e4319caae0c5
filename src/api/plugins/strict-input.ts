/**
 * What a request may carry, before any route sees it:
 *
 * - JSON bodies keep the types they were sent with (ajv coerces nothing), nest at most
 *   MAX_JSON_DEPTH levels, hold only well-formed Unicode (no lone surrogates, in values or
 *   keys) and finite numbers (`1e309` parses to Infinity), and carry no prototype keys.
 *   An empty body with `content-type: application/json` is no body at all, so bodiless
 *   actions (cancel, retry, revoke, flush) accept it; a route that needs a body still
 *   answers 400. Any other content type is a 415.
 * - Path and query values are strings on the wire; a field whose schema is an integer,
 *   number or boolean takes only its strict spelling (`12`, `-3`, `0.5`, `true`), so
 *   `1.0`, `+1`, ` 1`, `1e0`, `0x10` and `Infinity` reach ajv as strings and fail its type check.
 * - `date-time` values must also be instants JavaScript can represent between the years 1
 *   and 9999: a leap second (`23:59:60`), which RFC 3339 allows but Date cannot hold, is a 400.
 */
import type { FastifyInstance, RouteOptions, preValidationHookHandler } from 'fastify';
import { AppError } from '../../errors.js';

/** Deepest nesting of arrays and objects a JSON body may have. */
export const MAX_JSON_DEPTH = 64;

const STRICT = {
  integer: /^-?(?:0|[1-9][0-9]*)$/,
  number: /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/,
} as const;

const EARLIEST_MS = Date.parse('0001-01-01T00:00:00Z');
const LATEST_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** The ajv options every schema is compiled with: no coercion, and the stricter date-time check. */
export const ajvOptions = {
  customOptions: {
    removeAdditional: false,
    coerceTypes: false,
    useDefaults: true,
    allErrors: false,
  },
  onCreate(ajv: { formats: Record<string, unknown>; addFormat(name: string, format: unknown): unknown }) {
    const rfc3339 = ajv.formats['date-time'] as { validate: (s: string) => boolean } | undefined;
    if (!rfc3339) throw new Error('ajv-formats did not define date-time');
    ajv.addFormat('date-time', {
      type: 'string',
      validate: (s: string) => {
        if (!rfc3339.validate(s)) return false;
        const ms = Date.parse(s);
        return ms >= EARLIEST_MS && ms <= LATEST_MS;
      },
    });
  },
};

function invalid(path: string, reason: string): AppError {
  const field = path.replace(/^\//, '').replace(/\//g, '.');
  return new AppError('VALIDATION_FAILED', `body${field ? `.${field}` : ''}: ${reason}`, {
    location: 'body',
    field,
    reason,
  });
}

/** The first thing in a parsed JSON body that the API refuses whatever the route, or undefined. */
export function checkJsonValue(root: unknown): AppError | undefined {
  // Iterative, so a deep document cannot overflow the stack before its depth is seen.
  const stack: [unknown, number, string][] = [[root, 0, '']];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [value, depth, path] = top;
    if (typeof value === 'string') {
      if (!value.isWellFormed()) return invalid(path, 'is not well-formed Unicode (lone surrogate)');
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) return invalid(path, 'is not a finite number');
    } else if (typeof value === 'object' && value !== null) {
      if (depth >= MAX_JSON_DEPTH) return invalid(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) stack.push([value[i], depth + 1, `${path}/${i}`]);
        continue;
      }
      for (const [key, v] of Object.entries(value)) {
        if (!key.isWellFormed()) return invalid(path, 'has a key that is not well-formed Unicode');
        // As Fastify's own parser: no prototype keys (`__proto__`, `constructor.prototype`).
        if (
          key === '__proto__' ||
          (key === 'constructor' && typeof v === 'object' && v !== null && 'prototype' in v)
        )
          return invalid(`${path}/${key}`, 'is not accepted');
        stack.push([v, depth + 1, `${path}/${key}`]);
      }
    }
  }
  return undefined;
}

type Strict = 'integer' | 'number' | 'boolean';

interface FieldSchema {
  type?: string | string[];
}

/** Fields of a params or querystring schema whose values are converted from strings. */
function typedFields(schema: unknown): [string, Strict][] {
  const props = (schema as { properties?: Record<string, FieldSchema> } | undefined)?.properties ?? {};
  const out: [string, Strict][] = [];
  for (const [name, s] of Object.entries(props)) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const kind = (['integer', 'number', 'boolean'] as const).find((t) => types.includes(t));
    if (kind) out.push([name, kind]);
  }
  return out;
}

function convert(kind: Strict, raw: string): unknown {
  if (kind === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : raw;
  return STRICT[kind].test(raw) ? Number(raw) : raw;
}

function strictConversion(params: [string, Strict][], query: [string, Strict][]): preValidationHookHandler {
  const apply = (target: unknown, fields: [string, Strict][]) => {
    if (typeof target !== 'object' || target === null) return;
    const record = target as Record<string, unknown>;
    for (const [name, kind] of fields) {
      const raw = record[name];
      if (typeof raw === 'string') record[name] = convert(kind, raw);
    }
  };
  return (request, _reply, done) => {
    apply(request.params, params);
    apply(request.query, query);
    done();
  };
}

export function registerStrictInput(app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      done(new AppError('INVALID_JSON', 'request body is not valid JSON'), undefined);
      return;
    }
    const refused = checkJsonValue(value);
    if (refused) done(refused, undefined);
    else done(null, value);
  });
  app.addHook('onRoute', (route: RouteOptions) => {
    const params = typedFields(route.schema?.params);
    const query = typedFields(route.schema?.querystring);
    if (params.length === 0 && query.length === 0) return;
    const own = route.preValidation ?? [];
    route.preValidation = [strictConversion(params, query), ...(Array.isArray(own) ? own : [own])];
  });
}

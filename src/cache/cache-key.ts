import { hash } from 'node:crypto';
import { PREFIX_RE } from '../config/cache.js';

/** Every cache key starts with this; flush and pattern delete never reach outside it. */
export const NAMESPACE = 'ov:cache:v1:';
/** Generation counters live under the namespace, so a flush resets them too (they re-seed at random). */
export const GEN_PREFIX = `${NAMESPACE}_gen:`;
export const LOCK_PREFIX = `${NAMESPACE}_lock:`;

/**
 * A stable serialisation of cache arguments: object key order is irrelevant, `undefined`
 * properties are dropped (as in option bags), and every value is typed so `1`, `"1"`, `null`
 * and `undefined` never collide. Strings are JSON-escaped, so any Unicode (lone surrogates
 * included) serialises unambiguously. Throws TypeError for values that have no stable form.
 */
export function stableSerialize(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (Number.isNaN(value)) return 'NaN';
      return Object.is(value, -0) ? '0' : String(value);
    case 'boolean':
      return value ? 't' : 'f';
    case 'undefined':
      return 'u';
    case 'bigint':
      return `b${value.toString()}`;
    case 'object': {
      if (value === null) return 'n';
      if (Array.isArray(value)) return `[${value.map(stableSerialize).join(',')}]`;
      if (value instanceof Date) return `D${value.toISOString()}`;
      // Data with no stable JSON form; any other object (null-prototype query objects included)
      // is serialised by its own enumerable properties.
      if (
        value instanceof Map ||
        value instanceof Set ||
        value instanceof RegExp ||
        value instanceof Promise ||
        ArrayBuffer.isView(value) ||
        value instanceof ArrayBuffer
      ) {
        throw new TypeError(
          `cache arguments must be plain data; got ${Object.prototype.toString.call(value)}`,
        );
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${stableSerialize(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`cache arguments must be plain data; got a ${typeof value}`);
  }
}

/** 128-bit hex digest of the stable serialisation. */
export function hashArgs(args: unknown): string {
  return hash('sha256', stableSerialize(args), 'hex').slice(0, 32);
}

export function assertPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new TypeError(`cache prefix ${JSON.stringify(prefix)} must match ${PREFIX_RE.source}`);
  }
}

/** `ov:cache:v1:<prefix>:<hash of args>`. */
export function cacheKey(prefix: string, args: unknown): string {
  return `${NAMESPACE}${prefix}:${hashArgs(args)}`;
}

/** Generation names: `campaign:12`, `content:7`, `similar`... (letters, digits, `_ : -`). */
export const GEN_NAME_RE = /^[a-z][a-z0-9_:-]{0,127}$/;

export function genKey(name: string): string {
  if (!GEN_NAME_RE.test(name)) throw new TypeError(`generation name ${JSON.stringify(name)} is invalid`);
  return `${GEN_PREFIX}${name}`;
}

/** A fresh generation seed: random, so a counter that was flushed or expired never repeats old values. */
export function seedGeneration(): string {
  return String(Math.floor(Math.random() * 2 ** 47) + 1);
}

/**
 * Turns a user pattern (with or without the namespace) into a glob inside the namespace.
 * Returns null when it is not acceptable: empty, over 200 characters, or characters other
 * than letters, digits and `_ : - . * ? [ ] ^`.
 */
export function namespacedPattern(pattern: string): string | null {
  const p = pattern.startsWith(NAMESPACE) ? pattern.slice(NAMESPACE.length) : pattern;
  if (p.length === 0 || p.length > 200 || !/^[A-Za-z0-9_:.*?[\]^-]+$/.test(p)) return null;
  return `${NAMESPACE}${p}`;
}

/** Turns a user key (with or without the namespace) into a full cache key, or null when malformed. */
export function namespacedKey(key: string): string | null {
  const k = key.startsWith(NAMESPACE) ? key.slice(NAMESPACE.length) : key;
  if (k.length === 0 || k.length > 300 || !/^[A-Za-z0-9_:.-]+$/.test(k)) return null;
  return `${NAMESPACE}${k}`;
}

/** Redis glob semantics (`* ? [abc] [^a] [a-z] \x`) as a RegExp, for the memory store. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < glob.length) re += escapeRe(glob[++i] as string);
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`${re}$`);
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

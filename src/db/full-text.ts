import { type Expression, type SqlBool, sql } from 'kysely';
import type { Dialect } from './types.js';

/** Most terms a search uses; the rest are ignored. */
const MAX_TERMS = 8;

/**
 * Splits free text into search terms (letters and digits only), so user input can
 * never reach the full-text query syntax of either engine. Empty when nothing is searchable.
 */
export function searchTerms(q: string): string[] {
  return (
    q
      .normalize('NFC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  )
    .slice(0, MAX_TERMS)
    .map((t) => t.slice(0, 64));
}

/** FTS5 MATCH string: every term as a quoted prefix query, all required. */
export function fts5Query(terms: string[]): string {
  return terms.map((t) => `"${t}"*`).join(' ');
}

/** PostgreSQL tsquery text: every term as a prefix, all required. */
export function tsQuery(terms: string[]): string {
  return terms.map((t) => `${t}:*`).join(' & ');
}

/** `contents.id` matches the terms in title or keywords. */
export function contentMatches(dialect: Dialect, terms: string[]): Expression<SqlBool> {
  return dialect === 'sqlite'
    ? sql<SqlBool>`contents.id in (select rowid from contents_fts where contents_fts match ${fts5Query(terms)})`
    : sql<SqlBool>`contents.search_tsv @@ to_tsquery('simple', ${tsQuery(terms)})`;
}

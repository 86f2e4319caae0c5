import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, type LogEvent, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../config/config.js';
import type { Database, Db, Dialect } from './types.js';

/** An open database: the Kysely instance, its dialect, and how to close it. */
export interface DatabaseHandle {
  readonly db: Db;
  readonly dialect: Dialect;
  /** Round-trips a trivial query; throws when the database is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Called for errors on idle pooled connections (PostgreSQL restarts); without it they would crash the process. */
  onPoolError?: (err: Error) => void;
  /** Called after every statement with its SQL text (never its parameters) and duration (metrics). */
  onQuery?: (q: QueryEvent) => void;
}

/** One statement that ran: its compiled SQL, how long it took, and whether it failed. */
export interface QueryEvent {
  sql: string;
  durationMs: number;
  failed: boolean;
}

/** Kysely's log hook as a QueryEvent callback (no hook at all without one: no cost). */
const queryLog = (onQuery: OpenDatabaseOptions['onQuery']) =>
  onQuery
    ? {
        log: (e: LogEvent) =>
          onQuery({ sql: e.query.sql, durationMs: e.queryDurationMillis, failed: e.level === 'error' }),
      }
    : {};

export function openDatabase(config: DatabaseConfig, options: OpenDatabaseOptions = {}): DatabaseHandle {
  return config.dialect === 'sqlite' ? openSqlite(config, options) : openPostgres(config, options);
}

/** Opens the SQLite file with the settings every connection to it needs (also used by the migration lock). */
export function openSqliteFile(file: string, busyTimeoutMs: number): SQLite.Database {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const conn = new SQLite(file);
  if (file !== ':memory:') conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = NORMAL');
  conn.pragma('foreign_keys = ON');
  conn.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  return conn;
}

function openSqlite(
  config: Extract<DatabaseConfig, { dialect: 'sqlite' }>,
  options: OpenDatabaseOptions,
): DatabaseHandle {
  const conn = openSqliteFile(config.file, config.busyTimeoutMs);
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: conn }),
    ...queryLog(options.onQuery),
  });
  return {
    db,
    dialect: 'sqlite',
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      // Keeps the planner's statistics fresh for the next start (cheap; SQLite's recommendation).
      if (conn.open) conn.pragma('optimize');
      await db.destroy();
    },
  };
}

const PG_TIMESTAMPTZ = 1184;
const PG_TIMESTAMP = 1114;
const PG_DATE = 1082;
const PG_INT8 = 20;
const PG_NUMERIC = 1700;

/** Type parsers so rows look the same as on SQLite: ISO strings for times, numbers for counts. */
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    switch (oid) {
      case PG_TIMESTAMPTZ:
      case PG_TIMESTAMP:
        return (v: string) => new Date(oid === PG_TIMESTAMP ? `${v}Z` : v).toISOString();
      case PG_DATE:
        return (v: string) => v;
      case PG_INT8:
      case PG_NUMERIC:
        return (v: string) => Number(v);
      default:
        return pg.types.getTypeParser(oid, format);
    }
  },
} as unknown as pg.CustomTypesConfig;

function openPostgres(
  config: Extract<DatabaseConfig, { dialect: 'postgres' }>,
  options: OpenDatabaseOptions,
): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax,
    connectionTimeoutMillis: config.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    types: pgTypes,
    ...(config.statementTimeoutMs > 0 ? { statement_timeout: config.statementTimeoutMs } : {}),
  });
  const onError = (err: Error) => {
    if (options.onPoolError) options.onPoolError(err);
    else process.emitWarning(`PostgreSQL connection failed: ${err.message}`);
  };
  // Idle clients report through the pool; a client that is checked out when the server goes
  // away emits on itself, and an unhandled 'error' event would crash the process. The pool
  // discards such clients on release, so logging is all that is needed here.
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...queryLog(options.onQuery) });
  return {
    db,
    dialect: 'postgres',
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
    },
  };
}

import { randomUUID } from 'node:crypto';
import type SQLite from 'better-sqlite3';

/**
 * Generation bumps shared by processes whose stores are their own (memory stores over
 * one SQLite file). CacheService publishes every bump it makes and, before a memory
 * read, applies what the others published.
 */
export interface GenerationPeers {
  /** Tells the other processes these generation keys were bumped here. Throws when it could not. */
  publish(genKeys: readonly string[]): void;
  /**
   * Generation keys the other processes bumped since the last call ([] when none), or
   * `null` when some may have been missed (the log was pruned past this reader): the
   * caller then drops everything it holds. Throws when the log could not be read.
   */
  poll(): readonly string[] | null;
  close(): void;
}

export interface SqliteGenerationLogOptions {
  /** Longest a read may go without looking at the log, ms: the bound on cross-process staleness (CACHE_PEER_CHECK_MS). */
  checkIntervalMs: number;
  /** Rows older than this are pruned, ms; a reader idle for longer drops its whole cache once. */
  retainMs: number;
  now?: () => number;
}

interface LogRow {
  seq: number;
  origin: string;
  names: string;
}

/**
 * The shared log in SQLite (table `cache_generation_log`, migration 0004), on a
 * connection of its own. A check costs one `PRAGMA data_version` (it moves only when
 * another connection committed to the file), and a range query only when it moved;
 * checks are at most one per `checkIntervalMs`. SQLite serialises writers, so `seq`
 * has no holes except where old rows were pruned: a reader whose next row was pruned
 * before it read it lost track and drops everything.
 */
export class SqliteGenerationLog implements GenerationPeers {
  private readonly origin = randomUUID();
  private readonly now: () => number;
  private readonly version: SQLite.Statement<[], number>;
  private readonly since: SQLite.Statement<[number], LogRow>;
  private readonly first: SQLite.Statement<[], number | null>;
  private readonly insert: SQLite.Statement<[string, string, number]>;
  private readonly prune: SQLite.Statement<[number]>;
  private lastSeq: number;
  private lastVersion: number;
  private nextCheckAt = 0;
  private publishes = 0;

  constructor(
    private readonly conn: SQLite.Database,
    private readonly opts: SqliteGenerationLogOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.version = conn.prepare<[], number>('pragma data_version').pluck();
    this.since = conn.prepare<[number], LogRow>(
      'select seq, origin, names from cache_generation_log where seq > ? order by seq',
    );
    this.first = conn.prepare<[], number | null>('select min(seq) from cache_generation_log').pluck();
    this.insert = conn.prepare<[string, string, number]>(
      'insert into cache_generation_log (origin, names, created_ms) values (?, ?, ?)',
    );
    this.prune = conn.prepare<[number]>('delete from cache_generation_log where created_ms < ?');
    // A new process starts with an empty cache: what was published before it does not concern it.
    // (The last seq handed out, even if its row was pruned since.)
    this.lastSeq =
      conn
        .prepare<[], number | null>("select seq from sqlite_sequence where name = 'cache_generation_log'")
        .pluck()
        .get() ?? 0;
    this.lastVersion = this.version.get() as number;
  }

  publish(genKeys: readonly string[]): void {
    const now = this.now();
    this.insert.run(this.origin, JSON.stringify(genKeys), now);
    // Pruning is amortised over publishes; readers notice what they missed through the hole it leaves.
    if (++this.publishes % 1000 === 0) this.prune.run(now - this.opts.retainMs);
  }

  poll(): readonly string[] | null {
    const now = this.now();
    if (now < this.nextCheckAt) return NONE;
    this.nextCheckAt = now + this.opts.checkIntervalMs;
    const version = this.version.get() as number;
    if (version === this.lastVersion) return NONE;
    const rows = this.since.all(this.lastSeq);
    // Set after the read: a commit between the two is seen again next time, never lost.
    this.lastVersion = version;
    const first = this.first.get() ?? 0;
    const lost = first > this.lastSeq + 1;
    const out: string[] = [];
    for (const r of rows) {
      this.lastSeq = r.seq;
      if (r.origin !== this.origin) for (const k of JSON.parse(r.names) as string[]) out.push(k);
    }
    return lost ? null : out;
  }

  close(): void {
    if (this.conn.open) this.conn.close();
  }
}

const NONE: readonly string[] = [];

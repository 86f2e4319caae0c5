/**
 * Statement timing on each database dialect, and slow statements logged with their SQL text
 * but never their parameters.
 */
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { dbOperation, dbQueryObserver } from '../../src/telemetry/db-metrics.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { dbBackends, freshDatabaseConfig } from '../support/backends.js';
import { parseExposition, valueOf } from './exposition.js';

describe('dbOperation', () => {
  it('names the operation from the first keyword, anything else is other', () => {
    expect(dbOperation('select 1')).toBe('select');
    expect(dbOperation('  INSERT into x values (?)')).toBe('insert');
    expect(dbOperation('update "t" set a = $1')).toBe('update');
    expect(dbOperation('delete from t')).toBe('delete');
    expect(dbOperation('with recursive c as (select 1) select * from c')).toBe('other');
    expect(dbOperation('pragma optimize')).toBe('other');
    expect(dbOperation('')).toBe('other');
  });
});

describe.each(dbBackends())('database metrics: %s', (backend) => {
  const handles: DatabaseHandle[] = [];
  afterAll(async () => {
    for (const h of handles) await h.close();
  });

  it('times every statement and logs slow ones with the statement only', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
          cb();
        },
      }),
    );
    const metrics = new Metrics({ runtime: false });
    const config = await freshDatabaseConfig(backend);
    // 1 ms: the slow statement below takes far longer on either dialect.
    const h = openDatabase(config, { onQuery: dbQueryObserver(metrics, config.dialect, 1, logger) });
    handles.push(h);
    const secret = 'parameter-value-never-logged';
    const slow =
      backend === 'sqlite'
        ? sql`with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000) select count(*) as n, ${secret} as s from c`
        : sql`select pg_sleep(0.02), ${secret} as s`;
    await slow.execute(h.db);
    await expect(sql`select * from no_such_table`.execute(h.db)).rejects.toThrow();
    const series = parseExposition(await metrics.registry.metrics());
    const labels = { dialect: config.dialect };
    // SQLite: the recursive query is `other`, the failed one a select; PostgreSQL: two selects.
    const count = (operation: string) =>
      valueOf(series, 'omnivibe_db_query_duration_seconds_count', { ...labels, operation });
    expect([count('select'), count('other')]).toEqual(backend === 'sqlite' ? [1, 1] : [2, undefined]);
    expect(valueOf(series, 'omnivibe_db_slow_queries_total', labels)).toBeGreaterThanOrEqual(1);
    expect(valueOf(series, 'omnivibe_db_query_errors_total', { ...labels, operation: 'select' })).toBe(1);
    const logged = lines.find(
      (l) =>
        l.msg === 'slow database query' &&
        String(l.statement).includes(backend === 'sqlite' ? 'recursive' : 'pg_sleep'),
    );
    expect(logged).toBeDefined();
    expect(JSON.stringify(lines)).not.toContain(secret);
    expect(logged?.dialect).toBe(config.dialect);
  });
});

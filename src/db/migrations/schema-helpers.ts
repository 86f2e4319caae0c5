import { type CreateTableBuilder, type Kysely, sql, type RawBuilder } from 'kysely';
import type { Dialect } from '../types.js';

/**
 * Column types and defaults that differ between the dialects, so one migration
 * set produces both schemas. Migrations take `Kysely<unknown>`: they must not
 * depend on today's table types.
 */
export interface SchemaHelpers {
  readonly dialect: Dialect;
  /** Surrogate integer key: AUTOINCREMENT on SQLite, an identity column on PostgreSQL. */
  table(db: Kysely<unknown>, name: string): CreateTableBuilder<string, 'id'>;
  timestamp: RawBuilder<unknown>;
  float: RawBuilder<unknown>;
  date: RawBuilder<unknown>;
  now: RawBuilder<unknown>;
  /** `column in ('a', 'b', ...)` as a CHECK expression. */
  oneOf(column: string, values: readonly string[]): RawBuilder<unknown>;
}

export function schemaHelpers(dialect: Dialect): SchemaHelpers {
  const now = dialect === 'sqlite' ? sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))` : sql`now()`;
  const timestamp = dialect === 'sqlite' ? sql`text` : sql`timestamptz`;
  return {
    dialect,
    timestamp,
    float: dialect === 'sqlite' ? sql`real` : sql`double precision`,
    date: dialect === 'sqlite' ? sql`text` : sql`date`,
    now,
    table(db, name) {
      return db.schema
        .createTable(name)
        .ifNotExists()
        .addColumn('id', 'integer', (c) =>
          dialect === 'sqlite'
            ? c.primaryKey().autoIncrement()
            : c.primaryKey().generatedByDefaultAsIdentity(),
        )
        .addColumn('created_at', timestamp, (c) => c.notNull().defaultTo(now))
        .addColumn('updated_at', timestamp, (c) => c.notNull().defaultTo(now));
    },
    oneOf(column, values) {
      return sql`${sql.ref(column)} in (${sql.join(values.map((v) => sql.lit(v)))})`;
    },
  };
}

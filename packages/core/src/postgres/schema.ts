/**
 * The ledger's schema, as versioned SQL migrations (docs/ledger.md#schema). Each migration runs once, in
 * its own transaction, under an advisory lock, so gateways that start together migrate once.
 */
import type { Pool } from 'pg'

/** The table usagewire writes to unless told otherwise. */
export const DEFAULT_TABLE = 'usagewire_usage'

/** A table name: `name` or `schema.name`, lower case letters, digits and `_` (it ends up in SQL text). */
const TABLE_NAME = /^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/

export function checkTable(table: unknown): string {
  if (typeof table !== 'string' || !TABLE_NAME.test(table))
    throw new TypeError(
      `usagewire/postgres: table must be "name" or "schema.name" in [a-z0-9_], not ${JSON.stringify(table)}`,
    )
  return table
}

/** `schema.name` → `"schema"."name"`; the base name (for index names) is the part after the dot. */
export const quoteTable = (table: string): string =>
  table
    .split('.')
    .map((part) => `"${part}"`)
    .join('.')
const baseName = (table: string): string => table.split('.').pop()!

export interface Migration {
  version: number
  name: string
  /** The SQL for a ledger table of this name. */
  sql(table: string): string
}

/** Append only: a released migration is never edited, a change is a new version. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'create usage table',
    sql: (table) => {
      const t = quoteTable(table)
      const base = baseName(table)
      return `
CREATE TABLE IF NOT EXISTS ${t} (
  id                    text PRIMARY KEY,
  recorded_at           timestamptz NOT NULL,
  started_at            timestamptz,
  inserted_at           timestamptz NOT NULL DEFAULT now(),
  route                 text NOT NULL,
  method                text NOT NULL,
  dialect               text NOT NULL,
  model                 text,
  status                text NOT NULL,
  http_status           integer NOT NULL,
  streaming             boolean NOT NULL,
  final                 boolean NOT NULL,
  input_tokens          bigint NOT NULL,
  cache_read_tokens     bigint NOT NULL,
  cache_write_tokens    bigint NOT NULL,
  cache_write_5m_tokens bigint,
  cache_write_1h_tokens bigint,
  output_tokens         bigint NOT NULL,
  reasoning_tokens      bigint NOT NULL,
  first_byte_ms         double precision,
  total_ms              double precision,
  cost_currency         text,
  cost_total            numeric,
  cost_input            numeric,
  cost_cache_read       numeric,
  cost_cache_write      numeric,
  cost_output           numeric,
  cost_as_of            date,
  cost_model            text,
  attributes            jsonb,
  record                jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS "${base}_recorded_at_idx" ON ${t} (recorded_at);
CREATE INDEX IF NOT EXISTS "${base}_model_recorded_at_idx" ON ${t} (model, recorded_at);
CREATE INDEX IF NOT EXISTS "${base}_attributes_idx" ON ${t} USING gin (attributes jsonb_path_ops);
`
    },
  },
]

/** The migrations' own bookkeeping, one table per ledger table. */
const migrationsTable = (table: string): string => quoteTable(`${table}_migrations`)

/**
 * Brings the ledger table up to the latest version: creates it on an empty database, applies only the
 * missing migrations on an older one, does nothing on a current one. Safe to call on every start, from
 * several processes at once. Returns the versions it applied.
 */
export async function migrate(pool: Pool, options: { table?: string } = {}): Promise<number[]> {
  const table = checkTable(options.table ?? DEFAULT_TABLE)
  const applied: number[] = []
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    // One lock per table name: a second process waits here, then finds every version applied.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`usagewire:${table}`])
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${migrationsTable(table)} (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    )
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${migrationsTable(table)}`)
    const done = new Set(rows.map((row) => Number(row.version)))
    for (const migration of migrations) {
      if (done.has(migration.version)) continue
      await client.query(migration.sql(table))
      await client.query(`INSERT INTO ${migrationsTable(table)} (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ])
      applied.push(migration.version)
    }
    await client.query('COMMIT')
    return applied
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}

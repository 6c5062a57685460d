/**
 * The durable ledger against a real PostgreSQL (docs/ledger.md): records written while the database stops
 * and comes back, a sink closed mid-load and a new one on the same spill file, records written twice.
 * Each case ends with every record in the table exactly once. The server comes from the system
 * (test/postgres/cluster.ts); without it the tests are skipped locally, with the reason printed, and fail
 * in CI (CI=true).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { UsageRecord } from '@usagewire/core'
import { migrate, postgresLedger, type PostgresLedger } from '@usagewire/core/postgres'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findPostgres, startCluster, type Cluster } from './cluster.js'

const bin = findPostgres()
const inCI = process.env.CI === 'true'
if (!bin && !inCI)
  console.warn('test/postgres/ledger.test.ts skipped: no PostgreSQL server binaries (apt-get install -y postgresql)')

function record(n: number, prefix = 'req'): UsageRecord {
  return {
    id: `${prefix}_${String(n).padStart(4, '0')}`,
    route: '/v1/messages',
    method: 'POST',
    dialect: 'anthropic-messages',
    model: 'claude-sonnet-4-5',
    status: 'complete',
    httpStatus: 200,
    streaming: true,
    usage: {
      input: 1000 + n,
      cacheRead: 5000,
      cacheWrite: 407,
      cacheWrite5m: 407,
      cacheWrite1h: 0,
      output: 291,
      reasoning: 40,
    },
    sources: { input: 'x', cacheRead: 'x', cacheWrite: 'x', output: 'x', reasoning: 'x' },
    final: true,
    corrections: [],
    timing: { firstByteMs: 250, totalMs: 1500 },
    attributes: { team: n % 2 === 0 ? 'search' : 'ads' },
    cost: {
      currency: 'USD',
      total: 0.01,
      input: 0.003,
      cacheRead: 0.0015,
      cacheWrite: 0.00152625,
      output: 0.00397375,
      asOf: '2026-11-30',
      model: 'claude-sonnet-4-5',
    },
  }
}

const ids = (n: number, prefix = 'req') => Array.from({ length: n }, (_, i) => record(i, prefix).id)
const breathe = () => new Promise((resolve) => setTimeout(resolve, 1))

describe.skipIf(!bin && !inCI)('postgresLedger on a real PostgreSQL', () => {
  let cluster: Cluster
  let dir: string

  /** A fresh connection per question: the test's own connections would not survive a restart either. */
  async function sql<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: cluster.connectionString })
    await client.connect()
    try {
      return (await client.query<R>(text, values)).rows
    } finally {
      await client.end()
    }
  }

  /** Each stored id with how many times it is there. */
  async function stored(table: string): Promise<Map<string, number>> {
    const rows = await sql<{ id: string; n: string }>(`SELECT id, count(*) AS n FROM ${table} GROUP BY id`)
    return new Map(rows.map((row) => [row.id, Number(row.n)]))
  }

  async function expectExactlyOnce(table: string, expected: string[]): Promise<void> {
    const counts = await stored(table)
    expect([...counts.keys()].sort()).toEqual([...expected].sort())
    expect([...counts.values()].every((n) => n === 1)).toBe(true)
  }

  async function ledgerTable(table: string): Promise<void> {
    const pool = new pg.Pool({ connectionString: cluster.connectionString, max: 1 })
    try {
      expect(await migrate(pool, { table })).toEqual([1])
      expect(await migrate(pool, { table })).toEqual([])
    } finally {
      await pool.end()
    }
  }

  const leftovers = (spillFile: string) =>
    readdirSync(path.dirname(spillFile)).filter(
      (name) =>
        name.startsWith(`${path.basename(spillFile)}.replay-`) ||
        (name === path.basename(spillFile) && statSync(spillFile).size > 0),
    )

  beforeAll(async () => {
    if (!bin) throw new Error('no PostgreSQL server binaries (apt-get install -y postgresql): required in CI')
    cluster = await startCluster(bin)
    dir = mkdtempSync(path.join(tmpdir(), 'usagewire-ledger-'))
  }, 30_000)

  afterAll(async () => {
    await cluster?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('1,000 records written while the database stops and comes back: each stored exactly once', async () => {
    await ledgerTable('usage_restart')
    const spillFile = path.join(dir, 'restart.jsonl')
    const warnings: string[] = []
    const sink = postgresLedger({
      connectionString: cluster.connectionString,
      table: 'usage_restart',
      batchSize: 50,
      flushIntervalMs: 10,
      maxQueue: 200,
      spillFile,
      logger: { warn: (m) => warnings.push(m) },
    })
    const started = performance.now()
    for (let i = 0; i < 1000; i++) {
      sink.write(record(i))
      if (i % 25 === 24) await breathe()
      if (i === 299) await cluster.stop()
      if (i === 699) await cluster.start()
    }
    await sink.flush()
    const elapsed = performance.now() - started
    await expectExactlyOnce('usage_restart', ids(1000))
    expect(sink.stats.spilled).toBeGreaterThan(0)
    expect(sink.stats.replayed).toBeGreaterThan(0)
    expect(sink.stats.inserted).toBe(1000)
    expect(sink.stats.lost).toBe(0)
    expect(leftovers(spillFile)).toEqual([])
    expect(warnings.some((w) => w.includes('database unavailable'))).toBe(true)
    console.log(
      `restart: ${JSON.stringify(sink.stats)} in ${elapsed.toFixed(0)} ms (two restarts of the server included)`,
    )

    // The columns say what the record says.
    const [row] = await sql<Record<string, unknown>>(`SELECT * FROM usage_restart WHERE id = 'req_0007'`)
    expect(row).toMatchObject({
      route: '/v1/messages',
      method: 'POST',
      dialect: 'anthropic-messages',
      model: 'claude-sonnet-4-5',
      status: 'complete',
      http_status: 200,
      streaming: true,
      input_tokens: '1007',
      cache_read_tokens: '5000',
      cache_write_tokens: '407',
      cache_write_5m_tokens: '407',
      cache_write_1h_tokens: '0',
      output_tokens: '291',
      reasoning_tokens: '40',
      cost_total: '0.01',
      cost_cache_write: '0.00152625',
      cost_model: 'claude-sonnet-4-5',
      attributes: { team: 'ads' },
    })
    expect((row!.record as UsageRecord).usage.input).toBe(1007)
    const spend = await sql<{ team: string; usd: string }>(
      `SELECT attributes->>'team' AS team, sum(cost_total) AS usd FROM usage_restart GROUP BY 1 ORDER BY 1`,
    )
    expect(spend).toEqual([
      { team: 'ads', usd: '5.00' },
      { team: 'search', usd: '5.00' },
    ])
    await sink.close()
  })

  it('a sink closed mid-load (SIGTERM) and a new sink on the same spill file: each record stored exactly once', async () => {
    await ledgerTable('usage_close')
    const spillFile = path.join(dir, 'close.jsonl')
    const options = {
      connectionString: cluster.connectionString,
      table: 'usage_close',
      batchSize: 40,
      flushIntervalMs: 10,
      spillFile,
    }
    const first = postgresLedger(options)
    let closing: Promise<void> | undefined
    for (let i = 0; i < 1000; i++) {
      if (i === 800) closing = first.close() // a shutdown starts while records keep coming
      first.write(record(i))
      if (i % 50 === 49) await breathe()
      if (i === 399) await cluster.stop()
    }
    await closing
    expect(first.stats.spilled).toBeGreaterThan(0)
    expect(first.stats.lost).toBe(0)
    expect(first.stats.inserted + first.stats.spilled).toBeGreaterThanOrEqual(1000)

    await cluster.start()
    const second = postgresLedger(options)
    await second.flush()
    await expectExactlyOnce('usage_close', ids(1000))
    expect(second.stats.replayed).toBeGreaterThan(0)
    expect(leftovers(spillFile)).toEqual([])
    await second.close()
  })

  it('records written twice, and a spill file replayed after they were stored, are stored once', async () => {
    await ledgerTable('usage_twice')
    const spillFile = path.join(dir, 'twice.jsonl')
    const options = { connectionString: cluster.connectionString, table: 'usage_twice', batchSize: 64, spillFile }
    const sink = postgresLedger(options)
    for (let i = 0; i < 100; i++) sink.write(record(i)) // one batch holds an id twice
    for (let i = 0; i < 100; i++) sink.write(record(i))
    await sink.flush()
    for (let i = 0; i < 100; i++) sink.write(record(i)) // a later retry
    await sink.flush()
    await sink.close()
    expect(sink.stats).toMatchObject({ inserted: 100, duplicates: 200, spilled: 0 })

    // A crashed process left a spill file with stored records, a new one, and a line cut by the crash.
    const lines = [record(3), record(4), record(0, 'late')].map((r) =>
      JSON.stringify({ at: new Date().toISOString(), record: r }),
    )
    writeFileSync(spillFile, lines.join('\n') + '\n{"at":"2026-')
    const next = postgresLedger(options)
    await next.flush()
    await next.close()
    await expectExactlyOnce('usage_twice', [...ids(100), 'late_0000'])
    expect(next.stats).toMatchObject({ inserted: 1, duplicates: 2, replayed: 3, rejected: 1 })
    expect(existsSync(`${spillFile}.rejected`)).toBe(true)
    expect(leftovers(spillFile)).toEqual([])
  })

  it('inserts in batches: throughput with the database up', async () => {
    await ledgerTable('usage_speed')
    const sink = postgresLedger({
      connectionString: cluster.connectionString,
      table: 'usage_speed',
      batchSize: 500,
      maxQueue: 50_000,
      spillFile: path.join(dir, 'speed.jsonl'),
    })
    const n = 20_000
    const started = performance.now()
    for (let i = 0; i < n; i++) sink.write(record(i, 'speed'))
    await sink.flush()
    const seconds = (performance.now() - started) / 1000
    expect(sink.stats).toMatchObject({ inserted: n, spilled: 0 })
    console.log(
      `throughput: ${n} records in ${seconds.toFixed(2)} s = ${Math.round(n / seconds)} records/s (batches of 500)`,
    )
    await sink.close()
  })
})

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Pool } from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import type { UsageRecord } from '../record.js'
import { postgresLedger } from './ledger.js'
import { COLUMNS, rowValues } from './row.js'

const record = (id: string, model = 'claude-sonnet-4-5'): UsageRecord =>
  ({
    id,
    route: '/v1/messages',
    method: 'POST',
    dialect: 'anthropic-messages',
    model,
    status: 'complete',
    httpStatus: 200,
    streaming: false,
    usage: { input: 1, cacheRead: 2, cacheWrite: 3, output: 4, reasoning: 0 },
    sources: { input: 'x', cacheRead: 'x', cacheWrite: 'x', output: 'x', reasoning: 'x' },
    final: true,
    corrections: [],
    timing: { firstByteMs: null, totalMs: 10 },
  }) as UsageRecord

/** A pool that stores ids (or fails as told): what the sink does without a server. */
function fakePool() {
  const ids = new Set<string>()
  // `downAfter`: the number of queries answered before the database goes away (-1: never).
  const state = { up: true, refuse: '', downAfter: -1, hang: false }
  const pool = {
    on() {},
    off() {},
    async query(config: { text: string; values: unknown[] }) {
      if (state.hang) return new Promise<never>(() => {})
      if (state.downAfter === 0) state.up = false
      if (state.downAfter > 0) state.downAfter--
      if (!state.up) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
      const { values } = config
      const rows = values.length / COLUMNS.length
      const batch = Array.from({ length: rows }, (_, i) => String(values[i * COLUMNS.length]))
      if (state.refuse && batch.includes(state.refuse))
        throw Object.assign(new Error('invalid byte'), { code: '22021' })
      let rowCount = 0
      for (const id of batch) if (!ids.has(id) && ids.add(id)) rowCount++
      return { rowCount, rows: [] }
    },
  }
  return { pool: pool as unknown as Pool, ids, state }
}

const dirs: string[] = []
const spillFile = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'usagewire-spill-'))
  dirs.push(dir)
  return path.join(dir, 'spill.jsonl')
}
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })))

describe('postgresLedger', () => {
  it('refuses options it cannot work with, when it is created', () => {
    const { pool } = fakePool()
    expect(() => postgresLedger({ pool } as never)).toThrow(/spillFile/)
    expect(() => postgresLedger({ spillFile: 'x' } as never)).toThrow(/pool or connectionString/)
    expect(() => postgresLedger({ pool, spillFile: 'x', table: 'x; drop table y' })).toThrow(/table/)
    expect(() => postgresLedger({ pool, spillFile: 'x', batchSize: 100_000 })).toThrow(/batchSize/)
  })

  it('write never throws: a record without an id, a pool that throws at once', async () => {
    const file = spillFile()
    const pool = {
      on() {},
      off() {},
      query: () => {
        throw new Error('boom')
      },
    } as unknown as Pool
    const sink = postgresLedger({
      pool,
      spillFile: file,
      batchSize: 1,
      logger: {
        warn: () => {
          throw new Error('logger')
        },
      },
    })
    expect(() => sink.write(null as never)).not.toThrow()
    expect(() => sink.write(record('a'))).not.toThrow()
    await sink.close()
    expect(sink.stats).toMatchObject({ received: 2, rejected: 1, spilled: 1, lost: 0 })
    expect(readFileSync(file, 'utf8')).toContain('"id":"a"')
  })

  it('spills while the database is away and over maxQueue, then replays and removes what it replayed', async () => {
    const { pool, ids, state } = fakePool()
    const file = spillFile()
    state.up = false
    const sink = postgresLedger({ pool, spillFile: file, batchSize: 10, maxQueue: 5 })
    for (let i = 0; i < 50; i++) sink.write(record(`r${i}`))
    await sink.flush()
    expect(sink.stats.spilled).toBe(50)
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(50)
    state.up = true
    await sink.flush()
    expect(ids.size).toBe(50)
    expect(sink.stats).toMatchObject({ inserted: 50, replayed: 50, queued: 0 })
    expect(existsSync(file)).toBe(false)
    await sink.close()
  })

  it('a record the database refuses goes to <spillFile>.rejected; the rest of its batch is stored', async () => {
    const { pool, ids, state } = fakePool()
    const file = spillFile()
    state.refuse = 'bad'
    const sink = postgresLedger({ pool, spillFile: file, batchSize: 10 })
    for (const id of ['a', 'bad', 'c']) sink.write(record(id))
    await sink.close()
    expect([...ids].sort()).toEqual(['a', 'c'])
    expect(sink.stats).toMatchObject({ inserted: 2, rejected: 1 })
    expect(readFileSync(`${file}.rejected`, 'utf8')).toContain('"id":"bad"')
  })

  it('a refused record stays rejected, not lost, when the database goes away while its batch is tried row by row', async () => {
    const { pool, ids, state } = fakePool()
    const file = spillFile()
    state.refuse = 'bad'
    state.downAfter = 3 // the batch, then 'a' alone, then 'bad' alone; the database is gone for 'c'
    const sink = postgresLedger({ pool, spillFile: file, batchSize: 10 })
    for (const id of ['a', 'bad', 'c']) sink.write(record(id))
    await sink.close()
    expect([...ids]).toEqual(['a'])
    expect(sink.stats).toMatchObject({ inserted: 1, rejected: 1, spilled: 1, lost: 0 })
    expect(readFileSync(`${file}.rejected`, 'utf8')).toContain('"id":"bad"')
    expect(readFileSync(file, 'utf8')).toContain('"id":"c"')
  })

  it('a database that never answers: its batch is spilled after queryTimeoutMs and close() ends', async () => {
    const { pool, state } = fakePool()
    const file = spillFile()
    state.hang = true
    const sink = postgresLedger({ pool, spillFile: file, batchSize: 10, queryTimeoutMs: 50 })
    for (const id of ['a', 'b']) sink.write(record(id))
    let closed = false
    const closing = sink.close().then(() => (closed = true))
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))])
    expect(closed).toBe(true)
    expect(sink.stats).toMatchObject({ spilled: 2, lost: 0 })
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2)
  })

  it('stores what a client wrote as no text in UTF-8 (a lone surrogate, a NUL) as U+FFFD rather than be refused', () => {
    const values = rowValues({
      at: '2026-12-01T00:00:00.000Z',
      record: { ...record('s'), model: 'claude-\ud800', route: '/v1/messages\u0000' },
    })
    expect(values).toContain('claude-\ufffd')
    expect(values).toContain('/v1/messages\ufffd')
    const stored = values.find((v) => typeof v === 'string' && v.startsWith('{"id":"s"'))
    expect(stored).toContain('"model":"claude-\\ufffd"')
    expect(JSON.parse(stored as string).model).toBe('claude-\ufffd')
  })
})

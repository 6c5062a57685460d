/**
 * The durable ledger: a sink that stores every usage record in PostgreSQL (docs/ledger.md). Records wait
 * in a bounded queue and leave in multi-row INSERTs that skip ids already stored, so a retry or a replay
 * never makes a duplicate. While the database is away, or the queue is full, records go to an fsync'd
 * spill file and are replayed when the database is back. `write` never throws and never waits.
 */
import pg from 'pg'
import type { Pool, QueryConfig, QueryResult } from 'pg'
import { describeError, warn, type Logger } from '../log.js'
import type { UsageRecord } from '../record.js'
import { insertStatement, MAX_BATCH, type Entry } from './row.js'
import { checkTable, DEFAULT_TABLE, quoteTable } from './schema.js'
import { readSpilled, removeReplayed, spillFile } from './spill.js'

export interface PostgresLedgerOptions {
  /** A pg Pool of yours (the ledger never ends it), or… */
  pool?: Pool
  /** …a connection string, for a small pool of the ledger's own (ended by `close()`). */
  connectionString?: string
  /** Default `usagewire_usage`; `migrate(pool, { table })` creates it. */
  table?: string
  /** Records per INSERT. Default 100. */
  batchSize?: number
  /** How often queued records are written even when a batch is not full. Default 1000 ms. */
  flushIntervalMs?: number
  /** Records held in memory at most; more go straight to the spill file. Default 10,000. */
  maxQueue?: number
  /**
   * The longest one INSERT may take, waiting for a connection included, in ms. Default 30,000. A
   * database that accepts connections but never answers (hung, or cut off by the network) then has its
   * batches spilled, and `close()` still ends, whatever timeouts the pool given has.
   */
  queryTimeoutMs?: number
  /** Where records wait while the database is away: one file per process (docs/ledger.md). */
  spillFile: string
  logger?: Logger
}

export interface PostgresLedgerStats {
  /** Records handed to `write`. */
  received: number
  /** Rows the database stored. */
  inserted: number
  /** Records whose id was already stored (a retry, a replay, a record written twice): skipped. */
  duplicates: number
  /** Records appended to the spill file. */
  spilled: number
  /** Records read back from the spill file and stored. */
  replayed: number
  /** Records the database refused or spill lines unreadable, kept in `<spillFile>.rejected`. */
  rejected: number
  /** Records neither stored nor spilled (the spill file could not be written either). */
  lost: number
  /** Failed database calls and file writes, each also logged. */
  failures: number
  /** Records in memory now. */
  readonly queued: number
}

export interface PostgresLedger {
  readonly name: 'postgres'
  readonly stats: PostgresLedgerStats
  /** Queues the record; never throws, never waits. */
  write(record: UsageRecord): void
  /** Resolves once every record written before it is in the database or on disk in the spill file. */
  flush(): Promise<void>
  /** Flushes, then stops: for a graceful shutdown (SIGTERM). Later writes still reach the spill file. */
  close(): Promise<void>
}

/** SQLSTATE classes that blame the rows (data exception, integrity, program limit), not the database. */
const ROW_ERRORS = /^(22|23|54)/
const isRowError = (error: unknown): boolean => ROW_ERRORS.test(String((error as { code?: unknown })?.code ?? ''))
const MAX_RETRY_MS = 30_000

function checkOptions(options: PostgresLedgerOptions): void {
  const { pool, connectionString, batchSize, flushIntervalMs, maxQueue, queryTimeoutMs, spillFile, logger } = options
  if ((pool === undefined) === (connectionString === undefined))
    throw new TypeError('usagewire/postgres: give either pool or connectionString')
  if (pool !== undefined && typeof (pool as { query?: unknown })?.query !== 'function')
    throw new TypeError('usagewire/postgres: pool must be a pg Pool')
  if (connectionString !== undefined && typeof connectionString !== 'string')
    throw new TypeError('usagewire/postgres: connectionString must be a string')
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0 && batchSize <= MAX_BATCH))
    throw new TypeError(`usagewire/postgres: batchSize must be an integer from 1 to ${MAX_BATCH}`)
  if (flushIntervalMs !== undefined && !(Number.isFinite(flushIntervalMs) && flushIntervalMs > 0))
    throw new TypeError('usagewire/postgres: flushIntervalMs must be a positive number')
  if (maxQueue !== undefined && !(Number.isInteger(maxQueue) && maxQueue > 0))
    throw new TypeError('usagewire/postgres: maxQueue must be a positive integer')
  if (queryTimeoutMs !== undefined && !(Number.isFinite(queryTimeoutMs) && queryTimeoutMs > 0))
    throw new TypeError('usagewire/postgres: queryTimeoutMs must be a positive number')
  if (typeof spillFile !== 'string' || spillFile === '')
    throw new TypeError(
      'usagewire/postgres: spillFile (a path) is required: records wait there while the database is away',
    )
  if (logger !== undefined && typeof logger?.warn !== 'function')
    throw new TypeError('usagewire/postgres: logger must have warn()')
}

export function postgresLedger(options: PostgresLedgerOptions): PostgresLedger {
  checkOptions(options)
  const table = quoteTable(checkTable(options.table ?? DEFAULT_TABLE))
  const batchSize = options.batchSize ?? 100
  const flushIntervalMs = options.flushIntervalMs ?? 1000
  const maxQueue = options.maxQueue ?? 10_000
  const logger = options.logger
  const ownPool = options.pool === undefined
  const pool: Pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.connectionString,
      max: 2,
      connectionTimeoutMillis: 5000,
      allowExitOnIdle: true,
    })
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000
  // An idle connection the server drops is reported on the pool; unheard, it would end the process.
  const onPoolError = (error: Error) => warn(logger, `postgres ledger: idle connection lost: ${describeError(error)}`)
  pool.on('error', onPoolError)
  const spill = spillFile(options.spillFile)

  let queue: Entry[] = []
  let overflow: Entry[] = []
  let spilling: Promise<void> | undefined
  let down = false
  let downSince = 0
  let failuresInRow = 0
  let retryAt = 0
  /** A spill file may hold records: true at start (an earlier process may have left some). */
  let maySpilled = true
  let forced = false
  let again = false
  let pumping: Promise<void> | undefined
  let closed = false
  let closing: Promise<void> | undefined

  const stats: PostgresLedgerStats = {
    received: 0,
    inserted: 0,
    duplicates: 0,
    spilled: 0,
    replayed: 0,
    rejected: 0,
    lost: 0,
    failures: 0,
    get queued() {
      return queue.length + overflow.length
    },
  }

  function failed(what: string, error: unknown): void {
    stats.failures++
    warn(logger, `postgres ledger: ${what}: ${describeError(error)}`)
  }

  function markDown(error: unknown): void {
    stats.failures++
    failuresInRow++
    retryAt = Date.now() + Math.min(MAX_RETRY_MS, flushIntervalMs * 2 ** Math.min(failuresInRow - 1, 10))
    if (!down) {
      down = true
      downSince = Date.now()
      warn(
        logger,
        `postgres ledger: database unavailable (${describeError(error)}); records go to ${spill.path} until it is back`,
      )
    }
  }

  function markUp(): void {
    if (down) warn(logger, `postgres ledger: database back after ${Date.now() - downSince} ms; replaying ${spill.path}`)
    down = false
    failuresInRow = 0
  }

  /** Queues entries for the spill file; they are written in batches, one fsync each. */
  function toSpill(entries: Entry[]): void {
    overflow.push(...entries)
    if (spilling || overflow.length === 0) return
    spilling = drainOverflow().finally(() => {
      spilling = undefined
      if (overflow.length > 0) toSpill([])
    })
  }

  async function drainOverflow(): Promise<void> {
    while (overflow.length > 0) {
      const batch = overflow
      overflow = []
      try {
        await spill.append(batch)
        stats.spilled += batch.length
        maySpilled = true
      } catch (error) {
        stats.lost += batch.length
        failed(`${batch.length} records lost: the spill file ${spill.path} could not be written`, error)
      }
      // After close, late records still reach the file; the loop checks again after this await.
      if (closed && overflow.length === 0) await spill.close().catch(() => undefined)
    }
  }

  /** Resolves once everything handed to the spill file so far is on disk. */
  async function spilled(): Promise<void> {
    while (spilling) await spilling
  }

  async function insert(entries: readonly Entry[]): Promise<void> {
    const statement = insertStatement(table, entries)
    // pg's own query_timeout, and a bound on the whole call: pg's does not cover waiting for a connection.
    // A batch given up on here may still be stored later; its replay is then a duplicate, and skipped.
    const config = { text: statement.text, values: statement.values, query_timeout: queryTimeoutMs } as QueryConfig
    const query: Promise<QueryResult> = pool.query(config)
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from the database in ${queryTimeoutMs} ms`)),
        queryTimeoutMs + 1000,
      )
    })
    query.catch(() => undefined) // settled after the timeout: nobody waits for it any more
    const result = await Promise.race([query, timeout]).finally(() => clearTimeout(timer))
    const stored = result.rowCount ?? 0
    stats.inserted += stored
    stats.duplicates += entries.length - stored
  }

  /** Stores a batch; returns what the database could not take now (to spill). A refused row is rejected. */
  async function store(batch: readonly Entry[]): Promise<Entry[]> {
    try {
      await insert(batch)
      markUp()
      return []
    } catch (error) {
      if (!isRowError(error)) {
        markDown(error)
        return [...batch]
      }
    }
    // One row of the batch is at fault: find it, store the others.
    const refused: string[] = []
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!
      try {
        await insert([entry])
      } catch (error) {
        if (!isRowError(error)) {
          markDown(error)
          await reject(refused) // refused before the database went away: kept, not lost with the rest
          return batch.slice(i)
        }
        failed(`record ${entry.record.id} refused by the database, kept in ${spill.path}.rejected`, error)
        refused.push(JSON.stringify({ ...entry, error: describeError(error) }))
      }
    }
    markUp()
    await reject(refused)
    return []
  }

  async function reject(lines: string[]): Promise<void> {
    if (lines.length === 0) return
    stats.rejected += lines.length
    await spill.reject(lines).catch((error) => failed('the rejected file could not be written', error))
  }

  /** Stores what the spill files hold, oldest first; a file goes only once all of it is stored. */
  async function replay(): Promise<void> {
    maySpilled = false
    let files: string[]
    try {
      files = await spill.takeForReplay()
    } catch (error) {
      maySpilled = true
      failed(`the spill file ${spill.path} could not be rotated for replay`, error)
      return
    }
    for (const file of files) {
      const unreadable: string[] = []
      try {
        for await (const batch of readSpilled(file, batchSize, (line) => unreadable.push(line))) {
          const left = await store(batch)
          stats.replayed += batch.length - left.length
          if (left.length > 0) {
            maySpilled = true
            return
          }
        }
        await reject(unreadable)
        if (unreadable.length > 0) warn(logger, `postgres ledger: ${unreadable.length} unreadable lines in ${file}`)
        await removeReplayed(file)
      } catch (error) {
        maySpilled = true
        failed(`replay of ${file}`, error)
        return
      }
    }
  }

  async function pumpOnce(): Promise<void> {
    let tryDatabase = forced || !down || Date.now() >= retryAt
    forced = false
    while (queue.length > 0) {
      const batch = queue.splice(0, batchSize)
      const left = tryDatabase ? await store(batch) : batch
      if (left.length > 0) {
        tryDatabase = false
        toSpill(left)
      }
    }
    if (maySpilled && tryDatabase && !closed) await replay()
    await spilled()
  }

  function pump(): Promise<void> {
    if (pumping) {
      again = true
      return pumping
    }
    pumping = (async () => {
      do {
        again = false
        try {
          await pumpOnce()
        } catch (error) {
          failed('flush', error)
        }
      } while (again)
    })().finally(() => (pumping = undefined))
    return pumping
  }

  const timer = setInterval(() => void pump(), flushIntervalMs)
  timer.unref()

  return {
    name: 'postgres',
    stats,
    write(record) {
      try {
        stats.received++
        if (typeof record?.id !== 'string' || record.id === '') {
          stats.rejected++
          warn(logger, 'postgres ledger: a record without an id cannot be stored idempotently; dropped')
          return
        }
        const entry: Entry = { at: new Date().toISOString(), record }
        if (closed || queue.length >= maxQueue) return toSpill([entry])
        queue.push(entry)
        if (queue.length >= batchSize) void pump()
      } catch (error) {
        failed('write', error)
      }
    },
    async flush() {
      forced = true
      await pump()
      await spilled()
    },
    close() {
      closing ??= (async () => {
        closed = true
        clearInterval(timer)
        await pump()
        await spilled()
        await spill.close().catch((error) => failed('closing the spill file', error))
        pool.off('error', onPoolError)
        if (ownPool) await pool.end().catch((error) => failed('ending the pool', error))
      })()
      return closing
    },
  }
}

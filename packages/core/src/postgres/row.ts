/**
 * A usage record as a row of the ledger table (docs/ledger.md#schema). Values are made safe here, so that
 * a record with an odd field (a NaN count, a NUL in a string) is stored rather than refused; the whole
 * record is also kept as it came, in `record`.
 */
import type { UsageRecord } from '../record.js'

/** A record as it waits in the queue and in the spill file: with the time the sink received it. */
export interface Entry {
  /** ISO time the sink received the record: the record is written when its request ends. */
  at: string
  record: UsageRecord
}

export const COLUMNS = [
  'id',
  'recorded_at',
  'started_at',
  'route',
  'method',
  'dialect',
  'model',
  'status',
  'http_status',
  'streaming',
  'final',
  'input_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'cache_write_5m_tokens',
  'cache_write_1h_tokens',
  'output_tokens',
  'reasoning_tokens',
  'first_byte_ms',
  'total_ms',
  'cost_currency',
  'cost_total',
  'cost_input',
  'cost_cache_read',
  'cost_cache_write',
  'cost_output',
  'cost_as_of',
  'cost_model',
  'attributes',
  'record',
] as const

/** PostgreSQL takes at most 65535 parameters per statement. */
export const MAX_BATCH = Math.floor(65535 / COLUMNS.length)

/**
 * PostgreSQL text and jsonb refuse the NUL character, and a UTF-16 surrogate without its pair (a string
 * cut in the middle of an emoji, a model name a client made up) is no text in UTF-8: both become U+FFFD.
 */
const text = (value: unknown): string =>
  String(value).replace(/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\uFFFD')
const optionalText = (value: unknown): string | null => (value === undefined || value === null ? null : text(value))

/**
 * In JSON text a NUL is `\u0000` after an even run of backslashes (an odd run escapes the `\` itself);
 * JSON.stringify writes a lone surrogate the same way (`\ud800`; a paired one it writes as it is). jsonb
 * refuses both: each becomes U+FFFD.
 */
const json = (value: unknown): string =>
  JSON.stringify(value).replace(/(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi, '$1\\ufffd')

const tokens = (value: unknown): number =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0
const optionalTokens = (value: unknown): number | null => (value === undefined || value === null ? null : tokens(value))
const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null)
/** Cost amounts go to `numeric` as text, so no float rounding happens on the way. */
const amount = (value: unknown): string | null =>
  typeof value === 'number' && Number.isFinite(value) ? String(value) : null
const day = (value: unknown): string | null =>
  typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : null

/** The row's values, in `COLUMNS` order. */
export function rowValues({ at, record }: Entry): unknown[] {
  const usage = (record.usage ?? {}) as Partial<UsageRecord['usage']>
  const cost = record.cost
  const totalMs = finite(record.timing?.totalMs)
  const recordedAt = new Date(at)
  const startedAt = totalMs === null ? null : new Date(recordedAt.getTime() - totalMs).toISOString()
  const attributes = record.attributes && typeof record.attributes === 'object' ? json(record.attributes) : null
  return [
    text(record.id),
    at,
    startedAt,
    text(record.route ?? ''),
    text(record.method ?? ''),
    text(record.dialect ?? 'unknown'),
    optionalText(record.model),
    text(record.status ?? ''),
    Number.isInteger(record.httpStatus) ? record.httpStatus : 0,
    record.streaming === true,
    record.final === true,
    tokens(usage.input),
    tokens(usage.cacheRead),
    tokens(usage.cacheWrite),
    optionalTokens(usage.cacheWrite5m),
    optionalTokens(usage.cacheWrite1h),
    tokens(usage.output),
    tokens(usage.reasoning),
    finite(record.timing?.firstByteMs),
    totalMs,
    cost ? optionalText(cost.currency) : null,
    amount(cost?.total),
    amount(cost?.input),
    amount(cost?.cacheRead),
    amount(cost?.cacheWrite),
    amount(cost?.output),
    day(cost?.asOf),
    cost ? optionalText(cost.model) : null,
    attributes,
    json(record),
  ]
}

/** One multi-row INSERT for `entries`; a record already in the table is skipped, never duplicated. */
export function insertStatement(table: string, entries: readonly Entry[]): { text: string; values: unknown[] } {
  const values: unknown[] = []
  const rows: string[] = []
  for (const entry of entries) {
    const placeholders = rowValues(entry).map((value) => `$${values.push(value)}`)
    rows.push(`(${placeholders.join(',')})`)
  }
  return {
    text: `INSERT INTO ${table} (${COLUMNS.join(',')}) VALUES ${rows.join(',')} ON CONFLICT (id) DO NOTHING`,
    values,
  }
}

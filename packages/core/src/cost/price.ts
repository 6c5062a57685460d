import type { RecordCost, RecordUsage } from '../record.js'
import { DEFAULT_PRICES, type PriceEntry, type PriceRates, type PriceTable, type PriceTier } from './table.js'

/** What a request cost, bucket by bucket: the record's `cost`. */
export type Cost = RecordCost

/** The `prices` option: the default table, replaced (`table`) and/or extended (`extend`); `false` turns cost off. */
export type PricesOption = { table?: PriceTable; extend?: PriceTable } | false

/** Prices a record's usage for its model; undefined when the model or a needed rate is unknown. */
export type Pricer = (model: string | null, usage: RecordUsage) => Cost | undefined

// A Bedrock id: an optional inference-profile region (`us.`, `global.`…), the vendor, a version suffix
// (`-v1:0`, `-v1:0:200k`). An ARN was already cut to its last path segment.
const BEDROCK = /^(?:[a-z]{2,4}(?:-gov)?\.|global\.)?(?:anthropic|openai|google)\.(.+?)(?:-v\d+(?::[0-9a-z]+)*)?$/
const VERTEX_VERSION = /@[\w.-]+$/
const DATED = /-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$/

/**
 * The table key a model id prices at, or undefined (docs/cost.md#model-matching): the id itself, then
 * without a path prefix (`models/`, `openai/`, an ARN), without Bedrock's region, vendor and version,
 * without Vertex's `@version`, and last without a date (`-20250929`, `-2024-08-06`) or `-latest`.
 * Nothing else is stripped: `gpt-4o-mini` never falls back to `gpt-4o`, a preview never to its release.
 */
export function matchModel(model: string, keys: ReadonlySet<string>): string | undefined {
  let id = model.trim().toLowerCase()
  const steps: Array<(id: string) => string> = [
    (s) => s.slice(s.lastIndexOf('/') + 1),
    (s) => BEDROCK.exec(s)?.[1] ?? s,
    (s) => s.replace(VERTEX_VERSION, ''),
    (s) => s.replace(DATED, ''),
  ]
  if (keys.has(id)) return id
  for (const step of steps) {
    id = step(id)
    if (keys.has(id)) return id
  }
  return undefined
}

const NANO = 1e9

/** USD in whole nano-dollars, so that parts add up exactly. */
const nanos = (tokens: number, ratePerMillion: number): number => Math.round(tokens * ratePerMillion * 1000)

function ratesFor(entry: PriceEntry, promptTokens: number): PriceRates {
  let best: PriceTier | undefined
  for (const tier of entry.tiers ?? []) {
    if (promptTokens > tier.above && (best === undefined || tier.above > best.above)) best = tier
  }
  return best ?? entry
}

/** Nano-dollars for a bucket; null when it has tokens and no rate (unpriced, never priced at 0). */
function bucket(tokens: number, rate: number | undefined): number | null {
  if (tokens === 0) return 0
  return rate === undefined ? null : nanos(tokens, rate)
}

/**
 * Cache writes priced by TTL when the split is known; the rest (or all of it, with no split) at the rate
 * for writes without a TTL, else the 5-minute rate, Anthropic's default TTL (docs/cost.md#cache-writes).
 */
function cacheWriteNanos(usage: RecordUsage, rates: PriceRates): number | null {
  const fiveMinutes = usage.cacheWrite5m ?? 0
  const oneHour = usage.cacheWrite1h ?? 0
  const rest = Math.max(0, usage.cacheWrite - fiveMinutes - oneHour)
  // Three values, not a list of them: this runs for every record.
  const five = bucket(fiveMinutes, rates.cacheWrite5m)
  const hour = bucket(oneHour, rates.cacheWrite1h)
  const other = bucket(rest, rates.cacheWrite ?? rates.cacheWrite5m)
  return five === null || hour === null || other === null ? null : five + hour + other
}

/** The cost of one request's usage at one table entry; undefined when a bucket with tokens has no rate. */
export function priceUsage(usage: RecordUsage, entry: PriceEntry, model: string): Cost | undefined {
  const rates = ratesFor(entry, usage.input + usage.cacheRead + usage.cacheWrite)
  const input = bucket(usage.input, rates.input)
  const cacheRead = bucket(usage.cacheRead, rates.cacheRead)
  const cacheWrite = cacheWriteNanos(usage, rates)
  const output = bucket(usage.output, rates.output)
  if (input === null || cacheRead === null || cacheWrite === null || output === null) return undefined
  return {
    currency: 'USD',
    total: (input + cacheRead + cacheWrite + output) / NANO,
    input: input / NANO,
    cacheRead: cacheRead / NANO,
    cacheWrite: cacheWrite / NANO,
    output: output / NANO,
    asOf: entry.asOf,
    model,
  }
}

/** The pricer the `prices` option asks for, or undefined when cost is off. Options are checked before. */
/**
 * Model names whose price entry is remembered; past this many the memo starts over. Model names come from
 * clients and upstreams: a gateway that meets ever new ones (fine-tune ids, a client that makes them up)
 * must not keep each for good.
 */
export const MODEL_CACHE_SIZE = 1024

/** `fn`, remembering its answers for at most `size` arguments at a time; `size()` tells how many it holds. */
export function memo<T>(size: number, fn: (key: string) => T): ((key: string) => T) & { readonly size: () => number } {
  const answers = new Map<string, T>()
  const remembered = (key: string): T => {
    if (answers.has(key)) return answers.get(key) as T
    if (answers.size >= size) answers.clear()
    const answer = fn(key)
    answers.set(key, answer)
    return answer
  }
  return Object.assign(remembered, { size: () => answers.size })
}

export function createPricer(option: PricesOption | undefined): Pricer | undefined {
  if (option === false) return undefined
  const table: PriceTable = { ...(option?.table ?? DEFAULT_PRICES), ...option?.extend }
  const entries = new Map(Object.entries(table).map(([key, entry]) => [key.toLowerCase(), entry] as const))
  const keys = new Set(entries.keys())
  const keyOf = memo(MODEL_CACHE_SIZE, (model: string) => matchModel(model, keys))
  return (model, usage) => {
    if (model === null || model === '') return undefined
    const key = keyOf(model)
    return key === undefined ? undefined : priceUsage(usage, entries.get(key)!, key)
  }
}

const RATE_FIELDS = ['input', 'output', 'cacheRead', 'cacheWrite5m', 'cacheWrite1h', 'cacheWrite'] as const

const rate = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value) && value >= 0

function checkRates(rates: Record<string, unknown>, where: string): void {
  for (const field of RATE_FIELDS) {
    const value = rates[field]
    const required = field === 'input' || field === 'output'
    if ((required || value !== undefined) && !rate(value))
      throw new TypeError(`usagewire: prices ${where}.${field} must be a non-negative number (USD per million tokens)`)
  }
}

function checkTable(table: unknown, name: string): void {
  if (typeof table !== 'object' || table === null || Array.isArray(table))
    throw new TypeError(`usagewire: prices.${name} must be an object of model id → prices`)
  for (const [model, entry] of Object.entries(table)) {
    const where = `${name}["${model}"]`
    if (typeof entry !== 'object' || entry === null) throw new TypeError(`usagewire: prices ${where} must be an object`)
    const { asOf, tiers } = entry as { asOf?: unknown; tiers?: unknown }
    checkRates(entry as Record<string, unknown>, where)
    if (typeof asOf !== 'string' || asOf === '')
      throw new TypeError(`usagewire: prices ${where}.asOf must be the day the prices were taken (YYYY-MM-DD)`)
    if (tiers === undefined) continue
    if (!Array.isArray(tiers)) throw new TypeError(`usagewire: prices ${where}.tiers must be an array`)
    tiers.forEach((tier: unknown, i) => {
      const at = `${where}.tiers[${i}]`
      if (typeof tier !== 'object' || tier === null) throw new TypeError(`usagewire: prices ${at} must be an object`)
      const above = (tier as { above?: unknown }).above
      if (!(typeof above === 'number' && Number.isInteger(above) && above >= 0))
        throw new TypeError(`usagewire: prices ${at}.above must be a prompt size in tokens`)
      checkRates(tier as Record<string, unknown>, at)
    })
  }
}

/** Checks the `prices` option once, when the middleware is created. */
export function validatePrices(option: unknown): void {
  if (option === undefined || option === false) return
  if (typeof option !== 'object' || option === null || Array.isArray(option))
    throw new TypeError('usagewire: prices must be { table?, extend? } or false')
  const { table, extend } = option as { table?: unknown; extend?: unknown }
  if (table !== undefined) checkTable(table, 'table')
  if (extend !== undefined) checkTable(extend, 'extend')
}

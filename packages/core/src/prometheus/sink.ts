/**
 * The Prometheus sink: each usage record becomes counter increments and histogram observations on a
 * prom-client registry. Names, labels and meanings are listed in docs/metrics.md; the token counters
 * follow the canonical buckets of docs/usage-model.md, so they add up without double counting.
 */
import { Counter, register as globalRegistry, type Registry } from 'prom-client'
import type { UsageRecord } from '../record.js'
import { TalliedHistogram, type HistogramSeries } from './histogram.js'
import { createLabelGuard, isLabelName } from './labels.js'

export interface PrometheusSinkOptions {
  /** Where the metrics are registered. Default: prom-client's global `register`. */
  registry?: Registry
  /**
   * Keys of `record.attributes` (the `attributes` option of the middleware) to export as labels, e.g.
   * `['team']`. Prometheus needs label names up front; a record without one of them exports `""`.
   */
  attributeLabels?: readonly string[]
  /**
   * Distinct values kept per label (model, route, each attribute, correction field); later ones are
   * exported as `other` and counted in `usagewire_label_overflow_total`. Default 100.
   */
  maxValuesPerLabel?: number
  /** Per label, the only values exported as themselves (e.g. `{ model: ['claude-sonnet-4-5'] }`); the rest are `other`. */
  allowedValues?: Readonly<Record<string, readonly string[]>>
  /** Histogram buckets in seconds. */
  buckets?: { timeToFirstByte?: readonly number[]; duration?: readonly number[] }
}

/** A usagewire sink (`sinks: [prometheusSink()]`) that also says which registry it writes to. */
export interface PrometheusSink {
  readonly name: 'prometheus'
  readonly registry: Registry
  write(record: UsageRecord): void
}

/** LLM answers take from tens of milliseconds to minutes to start, and minutes to finish. */
const TTFB_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60]
const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600]

/** Labels the sink sets itself; an attribute label may not reuse them. */
const OWN_LABELS = ['model', 'dialect', 'route', 'status', 'ttl', 'field', 'label', 'le', 'quantile']

type Labels = Record<string, string>

/**
 * A token count that is not a non-negative number a counter can sum counts as 0: a counter throws on
 * anything else, and one series summed to Infinity would fail every scrape of the registry after it.
 */
const tokens = (value: unknown): number =>
  typeof value === 'number' && value > 0 && value <= Number.MAX_SAFE_INTEGER ? value : 0

const observable = (ms: unknown): ms is number => typeof ms === 'number' && Number.isFinite(ms) && ms >= 0

function checkOptions(options: PrometheusSinkOptions): void {
  const { attributeLabels = [], maxValuesPerLabel, allowedValues } = options
  if (!Array.isArray(attributeLabels)) throw new TypeError('usagewire/prometheus: attributeLabels must be an array')
  for (const name of attributeLabels) {
    if (typeof name !== 'string' || !isLabelName(name))
      throw new TypeError(`usagewire/prometheus: "${String(name)}" is not a Prometheus label name`)
    if (OWN_LABELS.includes(name))
      throw new TypeError(`usagewire/prometheus: attribute label "${name}" clashes with a label the sink sets`)
  }
  if (new Set(attributeLabels).size !== attributeLabels.length)
    throw new TypeError('usagewire/prometheus: attributeLabels has a name twice')
  if (maxValuesPerLabel !== undefined && !(Number.isInteger(maxValuesPerLabel) && maxValuesPerLabel > 0))
    throw new TypeError('usagewire/prometheus: maxValuesPerLabel must be a positive integer')
  if (allowedValues !== undefined && (typeof allowedValues !== 'object' || allowedValues === null))
    throw new TypeError('usagewire/prometheus: allowedValues must map label names to arrays of values')
  for (const [label, values] of Object.entries(allowedValues ?? {}))
    if (!Array.isArray(values)) throw new TypeError(`usagewire/prometheus: allowedValues.${label} must be an array`)
}

const sameLabels = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((name) => b.includes(name))

/**
 * The metric already on the registry (a second sink on the same registry shares it), or a new one. A metric
 * of that name with other labels or of another kind is a configuration mistake, told at once.
 */
function metric<M extends object>(
  registry: Registry,
  kind: abstract new (...args: never[]) => M,
  config: { name: string; labelNames: readonly string[] },
  make: () => M,
): M {
  const existing: unknown = registry.getSingleMetric(config.name)
  if (existing) {
    const labelNames = (existing as { labelNames?: readonly string[] }).labelNames ?? []
    if (existing instanceof kind && sameLabels(labelNames, config.labelNames)) return existing
    throw new TypeError(
      `usagewire/prometheus: ${config.name} is already registered with other labels or of another type ` +
        '(attributeLabels must be the same for every sink on one registry)',
    )
  }
  return make()
}

/** A prom-client Counter on `registry`, or the one of that name already there. */
function counterMetric(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly string[]; collect?: () => void },
): Counter<string> {
  return metric(
    registry,
    Counter<string>,
    config,
    () => new Counter({ ...config, labelNames: [...config.labelNames], registers: [registry] } as never),
  )
}

/**
 * A counter's sums, kept per label set and handed to prom-client when it is scraped. prom-client hashes
 * the whole label set on every `inc`, and a record makes nine of them; a tally keys the label set once
 * per record and adds to a number (docs/metrics.md#cost-per-record). Every sink on one registry shares
 * the metric, and so its tally.
 */
class Tally {
  private readonly series = new Map<string, { labels: Labels; value: number }>()

  /** The series for `key` (its labels copied when it is new): a sink keeps it and adds to `value`. */
  entry(key: string, labels: Labels): { labels: Labels; value: number } {
    let known = this.series.get(key)
    if (!known) this.series.set(key, (known = { labels: { ...labels }, value: 0 }))
    return known
  }

  /** At scrape time: the counter holds exactly the sums. */
  report(counter: Counter<string>): void {
    counter.reset()
    for (const { labels, value } of this.series.values()) if (Number.isFinite(value)) counter.inc(labels, value)
  }
}

const TALLIES = new WeakMap<object, Tally>()

/** A counter whose values come from its tally when scraped. */
function talliedCounter(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly string[] },
): { counter: Counter<string>; tally: Tally } {
  const counter = counterMetric(registry, {
    ...config,
    collect(this: Counter<string>) {
      TALLIES.get(this)?.report(this)
    },
  })
  let tally = TALLIES.get(counter)
  if (!tally) TALLIES.set(counter, (tally = new Tally()))
  return { counter, tally }
}

/** Joins label values into one key; a separator no label value holds. */
const SEP = '\u0000'

/**
 * A sink that turns every usage record into Prometheus metrics on `registry`: token counters per canonical
 * bucket, requests by status, corrections made on the wire, time to first byte and duration. Records of
 * every status count (an aborted stream's tokens were generated and billed). Options are checked here,
 * once; `write` never throws for a record's content.
 */
export function prometheusSink(options: PrometheusSinkOptions = {}): PrometheusSink {
  checkOptions(options)
  const registry = options.registry ?? globalRegistry
  const attributeLabels = [...(options.attributeLabels ?? [])]
  const common = ['model', 'dialect', 'route', ...attributeLabels]

  const counter = (name: string, help: string, labelNames: readonly string[] = common) =>
    talliedCounter(registry, { name, help, labelNames }).tally
  const histogram = (name: string, help: string, buckets: readonly number[]) => {
    const labelNames = [...common, 'status']
    const make = () => new TalliedHistogram(name, help, labelNames, buckets, registry)
    return metric(registry, TalliedHistogram, { name, labelNames }, make)
  }

  const requests = counter(
    'usagewire_requests_total',
    'LLM requests metered by usagewire, by how they ended (status: complete, incomplete, aborted, upstream_error, passthrough).',
    [...common, 'status'],
  )
  const input = counter(
    'usagewire_input_tokens_total',
    'Uncached prompt tokens: read at the base rate, neither served from nor written to the provider prompt cache.',
  )
  const cacheRead = counter(
    'usagewire_cache_read_input_tokens_total',
    "Prompt tokens served from the provider's prompt cache (provider prompt-cache reads; never the gateway's own response cache).",
  )
  const cacheWrite = counter(
    'usagewire_cache_write_input_tokens_total',
    "Prompt tokens written to the provider's prompt cache, by cache TTL (ttl: 5m, 1h, or unknown when the provider did not split them).",
    [...common, 'ttl'],
  )
  const output = counter('usagewire_output_tokens_total', 'Generated tokens, reasoning tokens included.')
  const reasoning = counter(
    'usagewire_reasoning_output_tokens_total',
    'The part of usagewire_output_tokens_total spent on reasoning or thinking (already counted there: never add the two).',
  )
  const corrections = counter(
    'usagewire_corrections_total',
    'Usage fields usagewire rewrote on the wire because the upstream sent a wrong or missing value (field: path inside the usage block).',
    [...common, 'field'],
  )
  const overflow = counterMetric(registry, {
    name: 'usagewire_label_overflow_total',
    help: 'Label values exported as "other" because the label reached its cap of distinct values or the value is not in its allow-list.',
    labelNames: ['label'],
  })
  const firstByte = histogram(
    'usagewire_time_to_first_byte_seconds',
    "Seconds from the request to the response's first byte, as usagewire saw them.",
    options.buckets?.timeToFirstByte ?? TTFB_BUCKETS,
  )
  const duration = histogram(
    'usagewire_duration_seconds',
    'Seconds from the request to the end of the response (or to the client leaving).',
    options.buckets?.duration ?? DURATION_BUCKETS,
  )

  const guard = createLabelGuard({
    maxValuesPerLabel: options.maxValuesPerLabel ?? 100,
    allowedValues: options.allowedValues ?? {},
    onOverflow: (label) => overflow.inc({ label }),
  })

  type Entry = { labels: Labels; value: number }
  interface SeriesSet {
    input: Entry
    cacheRead: Entry
    output: Entry
    reasoning: Entry
    writeUnknown?: Entry
    write5m?: Entry
    write1h?: Entry
    byStatus: Map<string, StatusSeries>
    corrections: Map<string, Entry>
  }
  // A label set's series that also have the status label.
  interface StatusSeries {
    requests: Entry
    firstByte: HistogramSeries
    duration: HistogramSeries
  }
  // The series of each label set seen: a record adds to numbers, never re-keys nine counters.
  const sets = new Map<string, SeriesSet>()
  const seriesSet = (key: string, labels: Labels): SeriesSet => ({
    input: input.entry(key, labels),
    cacheRead: cacheRead.entry(key, labels),
    output: output.entry(key, labels),
    reasoning: reasoning.entry(key, labels),
    byStatus: new Map(),
    corrections: new Map(),
  })

  return {
    name: 'prometheus',
    registry,
    write(record) {
      const labels: Labels = {
        model: guard.value('model', typeof record.model === 'string' && record.model !== '' ? record.model : 'unknown'),
        dialect: String(record.dialect),
        route: guard.value('route', String(record.route)),
      }
      let key = labels.model + SEP + labels.dialect + SEP + labels.route
      for (const name of attributeLabels) {
        const value = record.attributes?.[name]
        labels[name] = typeof value === 'string' ? guard.value(name, value) : ''
        key += SEP + labels[name]
      }
      // One lookup per record: the series of this label set, kept by the sink once made.
      let set = sets.get(key)
      if (!set) sets.set(key, (set = seriesSet(key, labels)))
      const statusName = String(record.status)
      let byStatus = set.byStatus.get(statusName)
      if (!byStatus) {
        const withStatus = { ...labels, status: statusName }
        const statusKey = key + SEP + statusName
        byStatus = {
          requests: requests.entry(statusKey, withStatus),
          firstByte: firstByte.entry(statusKey, withStatus),
          duration: duration.entry(statusKey, withStatus),
        }
        set.byStatus.set(statusName, byStatus)
      }
      byStatus.requests.value += 1

      // Every token series is written, 0 included: a cache counter with no series at all cannot be told
      // from a broken pipeline (docs/metrics.md#zero-is-a-value).
      const usage = record.usage ?? {}
      set.input.value += tokens(usage.input)
      set.cacheRead.value += tokens(usage.cacheRead)
      set.output.value += tokens(usage.output)
      set.reasoning.value += tokens(usage.reasoning)
      // The TTL split, when reported, is a part of cacheWrite; what it does not cover is `unknown`.
      const split5m = tokens(usage.cacheWrite5m)
      const split1h = tokens(usage.cacheWrite1h)
      if (split5m > 0) (set.write5m ??= cacheWrite.entry(key + SEP + '5m', { ...labels, ttl: '5m' })).value += split5m
      if (split1h > 0) (set.write1h ??= cacheWrite.entry(key + SEP + '1h', { ...labels, ttl: '1h' })).value += split1h
      const rest = tokens(usage.cacheWrite) - split5m - split1h
      if (rest > 0 || split5m + split1h === 0) {
        set.writeUnknown ??= cacheWrite.entry(key + SEP + 'unknown', { ...labels, ttl: 'unknown' })
        set.writeUnknown.value += Math.max(rest, 0)
      }

      for (const correction of record.corrections ?? []) {
        const field = guard.value('field', String(correction.field))
        let entry = set.corrections.get(field)
        if (!entry) set.corrections.set(field, (entry = corrections.entry(key + SEP + field, { ...labels, field })))
        entry.value += typeof correction.times === 'number' && correction.times > 1 ? correction.times : 1
      }

      const firstByteMs = record.timing?.firstByteMs
      const totalMs = record.timing?.totalMs
      if (observable(firstByteMs)) firstByte.observe(byStatus.firstByte, firstByteMs / 1000)
      if (observable(totalMs)) duration.observe(byStatus.duration, totalMs / 1000)
    },
  }
}

/**
 * A Prometheus histogram that the sink adds to directly, one series object per label set, and that
 * prom-client's registry reads through its `get()` at scrape time, like any metric it holds. prom-client's
 * own Histogram checks, sorts and hashes the labels on every `observe` (most of a record's cost in the
 * sink); here a record adds to counts its sink already holds (docs/metrics.md#cost-per-record).
 */
import type { Registry } from 'prom-client'

type Labels = Record<string, string>

/** One label set's counts: per bucket (not cumulative; the last is +Inf), their sum and number. */
export interface HistogramSeries {
  readonly labels: Labels
  readonly buckets: number[]
  sum: number
  count: number
}

interface Sample {
  labels: Record<string, string | number>
  value: number
  metricName: string
}

export class TalliedHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly labelNames: readonly string[]
  readonly bounds: readonly number[]
  private readonly series = new Map<string, HistogramSeries>()

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    bounds: readonly number[],
    registry: Registry,
  ) {
    this.labelNames = [...labelNames]
    this.bounds = [...bounds].sort((a, b) => a - b)
    registry.registerMetric(this as never)
  }

  /** The series of `key` (its labels copied when it is new), for the caller to keep and observe into. */
  entry(key: string, labels: Labels): HistogramSeries {
    let known = this.series.get(key)
    if (!known) {
      known = { labels: { ...labels }, buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }
      this.series.set(key, known)
    }
    return known
  }

  /** Adds `value` to `series`: to the first bucket whose bound is not below it. */
  observe(series: HistogramSeries, value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    series.buckets[i]! += 1
    series.sum += value
    series.count += 1
  }

  /** What the registry formats: per series observed, cumulative `_bucket`s, `_sum` and `_count`. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = []
    const bucket = `${this.name}_bucket`
    for (const { labels, buckets, sum, count } of this.series.values()) {
      // A series is made with its label set's first record, which may have had nothing to observe.
      if (count === 0) continue
      let cumulative = 0
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += buckets[i]!
        values.push({ labels: { le: this.bounds[i]!, ...labels }, value: cumulative, metricName: bucket })
      }
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: bucket })
      values.push({ labels: { ...labels }, value: sum, metricName: `${this.name}_sum` })
      values.push({ labels: { ...labels }, value: count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** `registry.resetMetrics()`: every count back to 0; the series objects stay (sinks hold them). */
  reset(): void {
    for (const series of this.series.values()) {
      series.buckets.fill(0)
      series.sum = 0
      series.count = 0
    }
  }
}

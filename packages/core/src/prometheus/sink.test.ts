import { Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { UsageRecord } from '../record.js'
import { prometheusSink } from './sink.js'

function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id: 'req_1',
    route: '/v1/messages',
    method: 'POST',
    dialect: 'anthropic-messages',
    model: 'claude-sonnet-4-5',
    status: 'complete',
    httpStatus: 200,
    streaming: true,
    usage: {
      input: 1234,
      cacheRead: 61711,
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
    ...over,
  }
}

/** The sum of the samples of `name` (a counter, or a histogram's `_bucket`/`_sum`/`_count`) whose labels include `labels`. */
async function sample(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name.replace(/_(bucket|sum|count)$/, ''))
  if (!metric) return undefined
  const { values } = await metric.get()
  const match = values.filter(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.entries(labels).every(([k, value]) => String((v.labels as Record<string, unknown>)[k] ?? '') === value),
  )
  return match.length === 0 ? undefined : match.reduce((sum, v) => sum + v.value, 0)
}

describe('prometheusSink', () => {
  it('counts each canonical bucket in its own counter, with model, dialect and route', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(record())
    sink.write(record())
    const labels = { model: 'claude-sonnet-4-5', dialect: 'anthropic-messages', route: '/v1/messages' }
    expect(await sample(registry, 'usagewire_input_tokens_total', labels)).toBe(2468)
    expect(await sample(registry, 'usagewire_cache_read_input_tokens_total', labels)).toBe(123422)
    expect(await sample(registry, 'usagewire_cache_write_input_tokens_total', { ...labels, ttl: '5m' })).toBe(814)
    expect(await sample(registry, 'usagewire_output_tokens_total', labels)).toBe(582)
    expect(await sample(registry, 'usagewire_reasoning_output_tokens_total', labels)).toBe(80)
    expect(await sample(registry, 'usagewire_requests_total', { ...labels, status: 'complete' })).toBe(2)
  })

  it('help texts say what is counted: prompt-cache reads are the provider’s, never the gateway’s response cache', async () => {
    const registry = new Registry()
    prometheusSink({ registry })
    const text = await registry.getSingleMetricAsString('usagewire_cache_read_input_tokens_total')
    expect(text).toMatch(
      /^# HELP usagewire_cache_read_input_tokens_total .*provider prompt-cache reads.*never the gateway's own response cache/m,
    )
    expect(text).toContain('# TYPE usagewire_cache_read_input_tokens_total counter')
    const reasoning = await registry.getSingleMetricAsString('usagewire_reasoning_output_tokens_total')
    expect(reasoning).toMatch(/part of usagewire_output_tokens_total/)
  })

  it('splits cache writes by TTL; the part the provider did not split is ttl="unknown"', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    const usage = { input: 1, cacheRead: 0, output: 1, reasoning: 0 }
    sink.write(record({ usage: { ...usage, cacheWrite: 1000, cacheWrite5m: 300, cacheWrite1h: 500 } }))
    sink.write(record({ usage: { ...usage, cacheWrite: 64 } }))
    const name = 'usagewire_cache_write_input_tokens_total'
    expect(await sample(registry, name, { ttl: '5m' })).toBe(300)
    expect(await sample(registry, name, { ttl: '1h' })).toBe(500)
    expect(await sample(registry, name, { ttl: 'unknown' })).toBe(264)
    expect(await sample(registry, name)).toBe(1064)
  })

  it('counts aborted, incomplete, upstream_error and passthrough records by status, and their tokens', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    for (const status of ['aborted', 'incomplete', 'upstream_error', 'passthrough', 'aborted'] as const) {
      sink.write(record({ status, final: false, timing: { firstByteMs: null, totalMs: 10 } }))
    }
    expect(await sample(registry, 'usagewire_requests_total', { status: 'aborted' })).toBe(2)
    expect(await sample(registry, 'usagewire_requests_total', { status: 'incomplete' })).toBe(1)
    expect(await sample(registry, 'usagewire_requests_total', { status: 'upstream_error' })).toBe(1)
    expect(await sample(registry, 'usagewire_requests_total', { status: 'passthrough' })).toBe(1)
    expect(await sample(registry, 'usagewire_input_tokens_total')).toBe(5 * 1234)
    expect(await sample(registry, 'usagewire_duration_seconds_count', { status: 'aborted' })).toBe(2)
    // No first byte: no time-to-first-byte observation.
    expect(await sample(registry, 'usagewire_time_to_first_byte_seconds_count')).toBeUndefined()
  })

  it('writes every token series, 0 included: no cache reads is a 0, not a missing series', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(record({ usage: { input: 10, cacheRead: 0, cacheWrite: 0, output: 5, reasoning: 0 } }))
    expect(await sample(registry, 'usagewire_cache_read_input_tokens_total')).toBe(0)
    expect(await sample(registry, 'usagewire_cache_write_input_tokens_total', { ttl: 'unknown' })).toBe(0)
    expect(await sample(registry, 'usagewire_reasoning_output_tokens_total')).toBe(0)
    expect(await registry.getSingleMetricAsString('usagewire_cache_read_input_tokens_total')).toContain(
      'usagewire_cache_read_input_tokens_total{model="claude-sonnet-4-5",dialect="anthropic-messages",route="/v1/messages"} 0',
    )
  })

  it('a record without a model still counts, as model="unknown"', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(record({ model: null, dialect: 'unknown' }))
    expect(await sample(registry, 'usagewire_requests_total', { model: 'unknown', dialect: 'unknown' })).toBe(1)
    expect(await sample(registry, 'usagewire_cache_read_input_tokens_total', { model: 'unknown' })).toBe(61711)
  })

  it('counts corrections by the field rewritten', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(
      record({
        corrections: [
          { where: 'message_delta', field: 'usage.input_tokens', from: 0, to: 1234 },
          { where: 'message_delta', field: 'usage.cache_read_input_tokens', from: 0, to: 61711 },
        ],
      }),
    )
    sink.write(record({ corrections: [{ where: 'message_delta', field: 'usage.input_tokens', from: 0, to: 1234 }] }))
    expect(await sample(registry, 'usagewire_corrections_total', { field: 'usage.input_tokens' })).toBe(2)
    expect(await sample(registry, 'usagewire_corrections_total', { field: 'usage.cache_read_input_tokens' })).toBe(1)
  })

  it('counts a change listed once for many events as many rewrites of its field', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(
      record({
        corrections: [
          { where: 'chunk@0', field: 'usage.prompt_tokens', from: 200, to: 5200, times: 3000 },
          { where: 'chunk@0', field: 'usage.total_tokens', from: 201, to: 5201 },
        ],
      }),
    )
    expect(await sample(registry, 'usagewire_corrections_total', { field: 'usage.prompt_tokens' })).toBe(3000)
    expect(await sample(registry, 'usagewire_corrections_total', { field: 'usage.total_tokens' })).toBe(1)
  })

  it('observes time to first byte and duration in seconds', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(record({ timing: { firstByteMs: 250, totalMs: 1500 } }))
    expect(await sample(registry, 'usagewire_time_to_first_byte_seconds_sum')).toBe(0.25)
    expect(await sample(registry, 'usagewire_duration_seconds_sum', { status: 'complete' })).toBe(1.5)
    expect(await sample(registry, 'usagewire_duration_seconds_bucket', { le: '1' })).toBe(0)
    expect(await sample(registry, 'usagewire_duration_seconds_bucket', { le: '2.5' })).toBe(1)
  })

  it('exports declared attributes as labels; a record without one exports ""', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry, attributeLabels: ['team'] })
    sink.write(record({ attributes: { team: 'search', secret: 'not exported' } }))
    sink.write(record())
    expect(await sample(registry, 'usagewire_output_tokens_total', { team: 'search' })).toBe(291)
    expect(await sample(registry, 'usagewire_output_tokens_total', { team: '' })).toBe(291)
    expect(await registry.metrics()).not.toContain('secret')
  })

  it('past maxValuesPerLabel distinct values a label exports "other", counted in usagewire_label_overflow_total', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry, maxValuesPerLabel: 2, attributeLabels: ['team'] })
    for (const model of ['m1', 'm2', 'm3', 'm4', 'm1']) sink.write(record({ model, attributes: { team: 'a' } }))
    expect(await sample(registry, 'usagewire_requests_total', { model: 'm1' })).toBe(2)
    expect(await sample(registry, 'usagewire_requests_total', { model: 'm2' })).toBe(1)
    expect(await sample(registry, 'usagewire_requests_total', { model: 'other' })).toBe(2)
    expect(await sample(registry, 'usagewire_requests_total', { model: 'm3' })).toBeUndefined()
    expect(await sample(registry, 'usagewire_output_tokens_total', { model: 'other' })).toBe(582)
    expect(await sample(registry, 'usagewire_label_overflow_total', { label: 'model' })).toBe(2)
    expect(await sample(registry, 'usagewire_label_overflow_total', { label: 'team' })).toBeUndefined()
  })

  it('an allow-list exports only its values; every other value is "other"', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry, allowedValues: { model: ['claude-sonnet-4-5'] } })
    sink.write(record())
    sink.write(record({ model: 'made-up-by-a-client' }))
    expect(await sample(registry, 'usagewire_requests_total', { model: 'claude-sonnet-4-5' })).toBe(1)
    expect(await sample(registry, 'usagewire_requests_total', { model: 'other' })).toBe(1)
    expect(await sample(registry, 'usagewire_label_overflow_total', { label: 'model' })).toBe(1)
  })

  it('cuts very long label values (a model name comes from the request body)', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    sink.write(record({ model: 'x'.repeat(10_000) }))
    expect(await registry.metrics()).not.toContain('x'.repeat(129))
    expect(await sample(registry, 'usagewire_requests_total', { model: 'x'.repeat(128) })).toBe(1)
  })

  it('never throws on odd numbers: negative, NaN or missing counts are skipped', () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    const odd = {
      input: -5,
      cacheRead: Number.NaN,
      cacheWrite: Infinity,
      output: 3,
      reasoning: undefined as unknown as number,
    }
    expect(() => sink.write(record({ usage: odd, timing: { firstByteMs: Number.NaN, totalMs: -1 } }))).not.toThrow()
    expect(() => sink.write({ ...record(), corrections: undefined } as unknown as UsageRecord)).not.toThrow()
  })

  it('a count too large to sum is skipped: the registry still scrapes after it, twice over', async () => {
    const registry = new Registry()
    const sink = prometheusSink({ registry })
    const huge = { input: 1e308, cacheRead: 0, cacheWrite: 0, output: 3, reasoning: 0 }
    sink.write(record({ usage: huge }))
    sink.write(record({ usage: huge }))
    await expect(registry.metrics()).resolves.toContain('usagewire_output_tokens_total')
    expect(await sample(registry, 'usagewire_output_tokens_total')).toBe(6)
  })

  it('two sinks on one registry share the metrics; different labels on one registry are refused at once', async () => {
    const registry = new Registry()
    prometheusSink({ registry }).write(record())
    prometheusSink({ registry }).write(record())
    expect(await sample(registry, 'usagewire_requests_total')).toBe(2)
    expect(() => prometheusSink({ registry, attributeLabels: ['team'] })).toThrow(/already registered/)
  })

  it('checks its options once: attribute labels must be label names that do not clash', () => {
    expect(() => prometheusSink({ registry: new Registry(), attributeLabels: ['team-name'] })).toThrow(/label name/)
    expect(() => prometheusSink({ registry: new Registry(), attributeLabels: ['__team'] })).toThrow(/label name/)
    expect(() => prometheusSink({ registry: new Registry(), attributeLabels: ['model'] })).toThrow(/clashes/)
    expect(() => prometheusSink({ registry: new Registry(), maxValuesPerLabel: 0 })).toThrow(/positive integer/)
  })
})

describe('the histograms', () => {
  it('expose exactly what prom-client histograms expose for the same observations, and reset like them', async () => {
    const ours = new Registry()
    const theirs = new Registry()
    const sink = prometheusSink({ registry: ours })
    const name = 'usagewire_duration_seconds'
    const labelNames = ['model', 'dialect', 'route', 'status']
    const buckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600]
    const reference = new Histogram({ name, help: 'x', labelNames, buckets, registers: [theirs] })
    const statuses = ['complete', 'aborted', 'complete', 'incomplete'] as const
    // On a bound, between bounds, below the first, above the last.
    const totals = [100, 250, 1, 3333, 700000, 60000, 0]
    for (const [i, totalMs] of totals.entries()) {
      const status = statuses[i % statuses.length]!
      const model = i % 2 ? 'claude-haiku-4-5' : 'claude-sonnet-4-5'
      sink.write(record({ status, model, timing: { firstByteMs: 5, totalMs } }))
      reference.observe({ model, dialect: 'anthropic-messages', route: '/v1/messages', status }, totalMs / 1000)
    }
    const lines = async (registry: Registry) =>
      (await registry.getSingleMetricAsString(name))
        .split('\n')
        .filter((line) => !line.startsWith('#'))
        .sort()
    expect(await lines(ours)).toEqual(await lines(theirs))
    expect(await lines(ours)).toHaveLength(3 * (buckets.length + 3))
    ours.resetMetrics()
    theirs.resetMetrics()
    expect(await lines(ours)).toEqual(await lines(theirs))
    sink.write(record({ timing: { firstByteMs: 5, totalMs: 400 } }))
    expect(await sample(ours, `${name}_count`)).toBe(1)
  })
})

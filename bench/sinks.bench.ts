/**
 * Row 9: what the metrics sinks add to each request, in this process. Records come from the e2e response
 * (bench/streams.ts) read through a meter, then varied in model, status and attributes the way a busy
 * gateway's are. Each sink's `write` is timed per record (median of 5 runs after a warm-up) and set
 * against usagewire's own CPU per response in-process (row 4f's interceptor + processor figure, measured
 * here the same way): a sink within 10 % of that is within the budget. The OpenTelemetry sink is set
 * against the same points recorded straight on the SDK: the SDK's own cost is any instrumentation's.
 */
import { Registry } from 'prom-client'
import { MeterProvider, AggregationTemporality, MetricReader } from '@opentelemetry/sdk-metrics'
import { createMeter, type UsageRecord } from '@usagewire/core'
import { prometheusSink } from '@usagewire/core/prometheus'
import { otelSink } from '@usagewire/core/otel'
import { anthropicBenchStream, E2E_DELTAS, E2E_WRITES, eventGroups } from './streams.js'
import { fmt, median, type Row } from './table.js'

export interface SinksBenchOptions {
  records: number
  runs: number
}
export const SINKS_FULL: SinksBenchOptions = { records: 20_000, runs: 5 }
export const SINKS_SMOKE: SinksBenchOptions = { records: 200, runs: 1 }

/** A reader that never exports: the SDK aggregates as it would behind any exporter. */
class HoldingReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE })
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** Real records: the e2e stream through a meter, with models, statuses and teams varied. */
function records(n: number): { list: UsageRecord[]; perResponseUs: number } {
  const got: UsageRecord[] = []
  const meter = createMeter({
    onUsage: (r) => got.push(r),
    attributes: (req) => ({ team: String(req.headers?.('x-team') ?? 'none') }),
  })
  const chunks = eventGroups(anthropicBenchStream(E2E_DELTAS, 0), E2E_WRITES)
  const one = (i: number) => {
    const exchange = meter.begin({
      method: 'POST',
      url: '/v1/messages',
      headers: (h) => (h === 'x-team' ? `team-${i % 12}` : undefined),
    })!
    exchange.respond(
      { status: 200, headers: (h) => (h === 'content-type' ? 'text/event-stream' : undefined) },
      { decoders: [] },
    )
    for (const c of chunks) exchange.push(c)
    exchange.end()
    exchange.finish({ kind: i % 50 === 0 ? 'abort' : 'end' })
  }
  for (let i = 0; i < 500; i++) one(i)
  got.length = 0
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) one(i)
  const perResponseUs = Number(process.hrtime.bigint() - t) / n / 1000
  const models = ['claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-opus-4-5', 'claude-sonnet-5']
  return { list: got.map((r, i) => ({ ...r, model: models[i % models.length]! })), perResponseUs }
}

/** Median µs per record of recording a record's four GenAI points straight on an SDK meter. */
function directOtel(list: UsageRecord[], runs: number): number {
  const provider = new MeterProvider({ readers: [new HoldingReader()] })
  const meter = provider.getMeter('direct')
  const tokens = meter.createHistogram('gen_ai.client.token.usage', { unit: '{token}' })
  const duration = meter.createHistogram('gen_ai.client.operation.duration', { unit: 's' })
  const firstChunk = meter.createHistogram('gen_ai.client.operation.time_to_first_chunk', { unit: 's' })
  // As lean as a hand-written instrumentation gets: object literals of known keys, no spreads.
  const write = (r: UsageRecord) => {
    const team = r.attributes?.team ?? ''
    const model = r.model ?? ''
    const u = r.usage
    tokens.record(u.input + u.cacheRead + u.cacheWrite, {
      team,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': model,
      'gen_ai.response.model': model,
      'gen_ai.token.type': 'input',
    })
    tokens.record(u.output, {
      team,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': model,
      'gen_ai.response.model': model,
      'gen_ai.token.type': 'output',
    })
    const attributes = {
      team,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': model,
      'gen_ai.response.model': model,
    }
    duration.record(r.timing.totalMs / 1000, attributes)
    if (r.timing.firstByteMs !== null) firstChunk.record(r.timing.firstByteMs / 1000, attributes)
  }
  for (const r of list.slice(0, 1000)) write(r)
  const times: number[] = []
  for (let k = 0; k < runs; k++) {
    const t = process.hrtime.bigint()
    for (const r of list) write(r)
    times.push(Number(process.hrtime.bigint() - t) / list.length / 1000)
  }
  void provider.shutdown()
  return median(times)
}

export async function sinksBench(log: (line: string) => void, opts: SinksBenchOptions): Promise<Row[]> {
  const { list, perResponseUs } = records(opts.records)
  const provider = new MeterProvider({ readers: [new HoldingReader()] })
  const sinks = {
    prometheus: prometheusSink({ registry: new Registry(), attributeLabels: ['team'] }),
    otel: otelSink({ meterProvider: provider, span: false }),
  }
  const rows: Row[] = []
  const budget = perResponseUs * 0.1
  log(`  ${list.length} records; usagewire in-process per response (meter + processor): ${fmt(perResponseUs, 1)} µs`)
  for (const [name, sink] of Object.entries(sinks)) {
    for (const r of list.slice(0, 1000)) sink.write(r)
    const runs: number[] = []
    for (let k = 0; k < opts.runs; k++) {
      const t = process.hrtime.bigint()
      for (const r of list) sink.write(r)
      runs.push(Number(process.hrtime.bigint() - t) / list.length / 1000)
    }
    const us = median(runs)
    log(`  ${name}: ${fmt(us, 2)} µs per record (runs ${runs.map((x) => fmt(x, 2)).join(', ')})`)
    if (name === 'otel') {
      // Most of it is the SDK's, which hashes the attributes of every point: the same four points (the
      // GenAI conventions' token usage twice, duration, time to first chunk) recorded straight on an SDK
      // meter are the baseline any OpenTelemetry instrumentation pays; the sink's own code is the rest.
      const direct = directOtel(list, opts.runs)
      const own = us - direct
      log(`  otel: the same points straight on the SDK ${fmt(direct, 2)} µs per record`)
      rows.push({
        id: '9',
        what: 'otel sink, CPU per record',
        value: `${fmt(us, 2)} µs`,
        baseline: `same 4 points on the SDK ${fmt(direct, 2)} µs; usagewire ${fmt(perResponseUs, 1)} µs per response`,
        ratio: `${own >= 0 ? '+' : ''}${fmt((own / perResponseUs) * 100, 1)} %`,
        target: '≤ 10 % over the SDK',
        result: own <= budget ? 'PASS' : 'MISS',
        raw: { usPerRecord: us, directUs: direct, runs, usagewirePerResponseUs: perResponseUs, records: list.length },
      })
      continue
    }
    rows.push({
      id: '9',
      what: `${name} sink, CPU per record`,
      value: `${fmt(us, 2)} µs`,
      baseline: `usagewire ${fmt(perResponseUs, 1)} µs per response in-process`,
      ratio: `${fmt((us / perResponseUs) * 100, 1)} %`,
      target: '≤ 10 % of it',
      result: us <= budget ? 'PASS' : 'MISS',
      raw: { usPerRecord: us, runs, usagewirePerResponseUs: perResponseUs, records: list.length },
    })
  }
  await provider.shutdown()
  return rows
}

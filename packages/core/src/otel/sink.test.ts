import type { Attributes, Meter } from '@opentelemetry/api'
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
} from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { describe, expect, it } from 'vitest'
import type { UsageRecord } from '../record.js'
import { errorTypeOf, providerOf } from './conventions.js'
import { otelSink } from './sink.js'

const ALL_KNOWN: UsageRecord['sources'] = {
  input: 'message_start.message.usage.input_tokens',
  cacheRead: 'message_start.message.usage.cache_read_input_tokens',
  cacheWrite: 'message_start.message.usage.cache_creation_input_tokens',
  output: 'message_delta.usage.output_tokens',
  reasoning: 'message_delta.usage.output_tokens_details.thinking_tokens',
}

function record(overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    id: 'req_1',
    route: '/v1/messages',
    method: 'POST',
    dialect: 'anthropic-messages',
    model: 'claude-sonnet-4-5',
    status: 'complete',
    httpStatus: 200,
    streaming: true,
    usage: { input: 2048, cacheRead: 30433, cacheWrite: 287, output: 512, reasoning: 100 },
    sources: ALL_KNOWN,
    final: true,
    corrections: [],
    timing: { firstByteMs: 31.5, totalMs: 802.5 },
    ...overrides,
  }
}

function metricsRig() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  return {
    meterProvider,
    /** Every histogram by name, with its points. */
    async histograms(): Promise<Map<string, HistogramMetricData>> {
      const { resourceMetrics } = await reader.collect()
      const found = new Map<string, HistogramMetricData>()
      for (const scope of resourceMetrics.scopeMetrics) {
        expect(scope.scope.name).toBe('usagewire')
        for (const metric of scope.metrics) {
          expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM)
          found.set(metric.descriptor.name, metric as HistogramMetricData)
        }
      }
      return found
    },
  }
}

function tracingRig() {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  return { exporter, provider, tracer: provider.getTracer('gateway') }
}

const points = (metric: HistogramMetricData | undefined) =>
  (metric?.dataPoints ?? []).map((point) => ({
    attributes: point.attributes,
    sum: point.value.sum,
    count: point.value.count,
  }))

const ANTHROPIC_ATTRIBUTES: Attributes = {
  'gen_ai.operation.name': 'chat',
  'gen_ai.provider.name': 'anthropic',
  'gen_ai.request.model': 'claude-sonnet-4-5',
  'gen_ai.response.model': 'claude-sonnet-4-5',
}

describe('otelSink metrics', () => {
  it('records input (cache reads and writes included) and output (reasoning included) on gen_ai.client.token.usage', async () => {
    const rig = metricsRig()
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(record())
    const histograms = await rig.histograms()
    const tokens = histograms.get('gen_ai.client.token.usage')
    expect(tokens?.descriptor.unit).toBe('{token}')
    expect(points(tokens)).toEqual([
      { attributes: { ...ANTHROPIC_ATTRIBUTES, 'gen_ai.token.type': 'input' }, sum: 2048 + 30433 + 287, count: 1 },
      { attributes: { ...ANTHROPIC_ATTRIBUTES, 'gen_ai.token.type': 'output' }, sum: 512, count: 1 },
    ])
  })

  it('records the duration and, for a stream, the time to first chunk, in seconds', async () => {
    const rig = metricsRig()
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(record())
    const histograms = await rig.histograms()
    expect(histograms.get('gen_ai.client.operation.duration')?.descriptor.unit).toBe('s')
    expect(points(histograms.get('gen_ai.client.operation.duration'))).toEqual([
      { attributes: ANTHROPIC_ATTRIBUTES, sum: 0.8025, count: 1 },
    ])
    expect(histograms.get('gen_ai.client.operation.time_to_first_chunk')?.descriptor.unit).toBe('s')
    expect(points(histograms.get('gen_ai.client.operation.time_to_first_chunk'))).toEqual([
      { attributes: ANTHROPIC_ATTRIBUTES, sum: 0.0315, count: 1 },
    ])
  })

  it('uses the bucket boundaries the conventions advise', async () => {
    const rig = metricsRig()
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(record())
    const histograms = await rig.histograms()
    const boundaries = (name: string) => histograms.get(name)?.dataPoints[0]?.value.buckets.boundaries
    expect(boundaries('gen_ai.client.token.usage')?.at(-1)).toBe(67108864)
    expect(boundaries('gen_ai.client.operation.duration')).toEqual([
      0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
  })

  it('records no time to first chunk for a whole JSON body', async () => {
    const rig = metricsRig()
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(record({ streaming: false }))
    const histograms = await rig.histograms()
    expect(histograms.has('gen_ai.client.operation.duration')).toBe(true)
    expect(points(histograms.get('gen_ai.client.operation.time_to_first_chunk'))).toEqual([])
  })

  it('records an aborted request with the tokens known then, and error.type aborted', async () => {
    const rig = metricsRig()
    const aborted = record({
      status: 'aborted',
      final: false,
      usage: { input: 1200, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 },
      sources: { ...ALL_KNOWN, cacheRead: 'unknown', cacheWrite: 'unknown', output: 'unknown', reasoning: 'unknown' },
    })
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(aborted)
    const histograms = await rig.histograms()
    const attributes = { ...ANTHROPIC_ATTRIBUTES, 'error.type': 'aborted' }
    // The output nobody reported is not recorded as 0.
    expect(points(histograms.get('gen_ai.client.token.usage'))).toEqual([
      { attributes: { ...attributes, 'gen_ai.token.type': 'input' }, sum: 1200, count: 1 },
    ])
    expect(points(histograms.get('gen_ai.client.operation.duration'))).toEqual([{ attributes, sum: 0.8025, count: 1 }])
  })

  it('merges record.attributes, the conventions winning a clash', async () => {
    const rig = metricsRig()
    const tagged = record({ attributes: { team: 'search', 'gen_ai.operation.name': 'mine' } })
    otelSink({ meterProvider: rig.meterProvider, span: false }).write(tagged)
    const [point] = points((await rig.histograms()).get('gen_ai.client.operation.duration'))
    expect(point?.attributes).toEqual({ ...ANTHROPIC_ATTRIBUTES, team: 'search' })
  })

  it('leaves the model attributes out when the record has no model, and lets `provider` name the provider', async () => {
    const rig = metricsRig()
    const sink = otelSink({ meterProvider: rig.meterProvider, span: false, provider: () => 'deepseek' })
    sink.write(record({ dialect: 'openai-chat', model: null }))
    const [point] = points((await rig.histograms()).get('gen_ai.client.operation.duration'))
    expect(point?.attributes).toEqual({ 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'deepseek' })
  })

  it('uses a given meter, creating its instruments at the first record', async () => {
    const rig = metricsRig()
    const meter = rig.meterProvider.getMeter('usagewire', 'test')
    const sink = otelSink({ meter, span: false })
    expect((await rig.histograms()).size).toBe(0)
    sink.write(record())
    sink.write(record())
    expect(points((await rig.histograms()).get('gen_ai.client.operation.duration'))[0]?.count).toBe(2)
  })

  it('never throws out of write() when the meter fails, and tells the logger', () => {
    const warnings: string[] = []
    const broken = {
      createHistogram: () => {
        throw new Error('meter is broken')
      },
    } as unknown as Meter
    const sink = otelSink({ meter: broken, span: false, logger: { warn: (message) => warnings.push(message) } })
    expect(() => sink.write(record())).not.toThrow()
    expect(warnings).toEqual(['usagewire: otel sink could not record metrics: meter is broken'])
  })

  it('never throws out of write() when recording a point fails', () => {
    const throwing = () => {
      throw new Error('record failed')
    }
    const meter = { createHistogram: () => ({ record: throwing }) } as unknown as Meter
    const spanOf = () => {
      throw new Error('no span')
    }
    expect(() => otelSink({ meter, span: spanOf }).write(record())).not.toThrow()
  })
})

describe('otelSink span attributes', () => {
  it('sets gen_ai.usage.* on the span the `span` option gives, input including the cache', () => {
    const { exporter, tracer } = tracingRig()
    const span = tracer.startSpan('POST /v1/messages')
    otelSink({ meterProvider: metricsRig().meterProvider, span: () => span }).write(record())
    span.end()
    expect(exporter.getFinishedSpans()[0]?.attributes).toEqual({
      'gen_ai.usage.input_tokens': 2048 + 30433 + 287,
      'gen_ai.usage.output_tokens': 512,
      'gen_ai.usage.cache_read.input_tokens': 30433,
      'gen_ai.usage.cache_write.input_tokens': 287,
      'gen_ai.usage.reasoning.output_tokens': 100,
    })
  })

  it('also writes gen_ai.usage.cache_creation.input_tokens with legacyCacheCreation', () => {
    const { exporter, tracer } = tracingRig()
    const span = tracer.startSpan('POST /v1/messages')
    otelSink({ meterProvider: metricsRig().meterProvider, span: () => span, legacyCacheCreation: true }).write(record())
    span.end()
    const attributes = exporter.getFinishedSpans()[0]?.attributes
    expect(attributes?.['gen_ai.usage.cache_write.input_tokens']).toBe(287)
    expect(attributes?.['gen_ai.usage.cache_creation.input_tokens']).toBe(287)
  })

  it('sets only the counts the record knows', () => {
    const { exporter, tracer } = tracingRig()
    const span = tracer.startSpan('POST /chat/completions')
    const partial = record({
      dialect: 'openai-chat',
      status: 'aborted',
      usage: { input: 900, cacheRead: 100, cacheWrite: 0, output: 0, reasoning: 0 },
      sources: { ...ALL_KNOWN, cacheWrite: 'unknown', output: 'unknown', reasoning: 'unknown' },
    })
    otelSink({ meterProvider: metricsRig().meterProvider, span: () => span }).write(partial)
    span.end()
    expect(exporter.getFinishedSpans()[0]?.attributes).toEqual({
      'gen_ai.usage.input_tokens': 1000,
      'gen_ai.usage.cache_read.input_tokens': 100,
    })
  })

  it('leaves a span that has already ended alone', () => {
    const { exporter, tracer } = tracingRig()
    const span = tracer.startSpan('POST /v1/messages')
    span.end()
    otelSink({ meterProvider: metricsRig().meterProvider, span: () => span }).write(record())
    expect(exporter.getFinishedSpans()[0]?.attributes).toEqual({})
  })

  it("with span: 'child', ends a chat {model} client span covering the request, with every attribute", () => {
    const { exporter, provider } = tracingRig()
    const errored = record({ status: 'upstream_error', httpStatus: 529, error: 'overloaded_error' })
    otelSink({ meterProvider: metricsRig().meterProvider, span: 'child', tracerProvider: provider }).write(errored)
    const [span] = exporter.getFinishedSpans()
    expect(span?.name).toBe('chat claude-sonnet-4-5')
    expect(span?.status).toEqual({ code: 2, message: 'overloaded_error' })
    expect(span?.attributes).toMatchObject({
      ...ANTHROPIC_ATTRIBUTES,
      'error.type': '529',
      'gen_ai.usage.input_tokens': 2048 + 30433 + 287,
      'gen_ai.usage.output_tokens': 512,
    })
    const [seconds, nanos] = span!.duration
    expect(seconds * 1000 + nanos / 1e6).toBeCloseTo(802.5, 0)
  })
})

describe('conventions', () => {
  it('names the provider of each dialect with the well-known values', () => {
    const of = (dialect: UsageRecord['dialect'], route = '/x') => providerOf(record({ dialect, route }))
    expect(of('anthropic-messages')).toBe('anthropic')
    expect(of('openai-chat')).toBe('openai')
    expect(of('openai-responses')).toBe('openai')
    expect(of('bedrock-invoke')).toBe('aws.bedrock')
    expect(of('bedrock-converse')).toBe('aws.bedrock')
    expect(of('gemini', '/v1beta/models/gemini-2.5-flash:streamGenerateContent')).toBe('gcp.gemini')
    expect(
      of('gemini', '/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent'),
    ).toBe('gcp.vertex_ai')
    expect(of('ollama')).toBe('ollama')
    expect(of('unknown')).toBe('unknown')
  })

  it('gives error.type a low-cardinality class', () => {
    const of = (overrides: Partial<UsageRecord>) => errorTypeOf(record(overrides))
    expect(of({})).toBeUndefined()
    expect(of({ status: 'passthrough' })).toBeUndefined()
    expect(of({ status: 'upstream_error', httpStatus: 429, error: 'HTTP 429' })).toBe('429')
    expect(of({ status: 'upstream_error', error: 'overloaded_error' })).toBe('overloaded_error')
    expect(of({ status: 'upstream_error', error: 'The server had an error while processing' })).toBe('_OTHER')
    expect(of({ status: 'incomplete', error: 'socket hang up' })).toBe('incomplete')
    expect(of({ status: 'aborted' })).toBe('aborted')
  })
})

/**
 * The OpenTelemetry sink behind a real gateway (Express + usagewire + http-proxy-middleware, mock upstream):
 * the points and spans match the records (docs/metrics.md#opentelemetry).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { context, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
} from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { usagewire, type UsageRecord } from '@usagewire/express'
import { otelSink, type OtelSinkOptions } from '@usagewire/core/otel'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  anthropicRequest,
  anthropicStream,
  createGate,
  listen,
  shut,
  SSE_HEADERS,
  startUpstream,
  waitFor,
  type Upstream,
} from '../express/helpers.js'

/** AsyncLocalStorage context propagation, as @opentelemetry/context-async-hooks gives it. */
class StorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>()
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args))
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target
    const manager = this
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(this, args))
    } as T
  }
  enable(): this {
    return this
  }
  disable(): this {
    this.storage.disable()
    return this
  }
}

beforeAll(() => {
  context.setGlobalContextManager(new StorageContextManager())
})
afterAll(() => {
  context.disable()
})

interface Rig {
  upstream: Upstream
  url: string
  records: UsageRecord[]
  spans: InMemorySpanExporter
  histograms(): Promise<Map<string, HistogramMetricData>>
  close(): Promise<void>
}

/**
 * A gateway whose first middleware opens a server span and runs the rest of the request in its context
 * (what an HTTP instrumentation does), ending it when the response closes.
 */
async function startRig(sinkOptions: OtelSinkOptions): Promise<Rig> {
  const upstream = await startUpstream()
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const tracer = tracerProvider.getTracer('gateway')
  const records: UsageRecord[] = []

  const app = express()
  app.use((req, res, next) => {
    const span = tracer.startSpan(`${req.method} ${req.path}`)
    res.on('close', () => span.end())
    context.with(trace.setSpan(context.active(), span), next)
  })
  app.use(
    usagewire({
      onUsage: (record) => void records.push(record),
      sinks: [otelSink({ meterProvider, tracerProvider, ...sinkOptions })],
    }),
  )
  app.use(createProxyMiddleware({ target: upstream.url }))
  const server = http.createServer(app)
  const url = await listen(server)
  return {
    upstream,
    url,
    records,
    spans,
    async histograms() {
      const { resourceMetrics } = await reader.collect()
      const found = new Map<string, HistogramMetricData>()
      for (const scope of resourceMetrics.scopeMetrics)
        for (const metric of scope.metrics) found.set(metric.descriptor.name, metric as HistogramMetricData)
      return found
    },
    close: async () => {
      await shut(server)
      await upstream.close()
    },
  }
}

const points = (metric: HistogramMetricData | undefined) =>
  (metric?.dataPoints ?? []).map((point) => ({ attributes: point.attributes, sum: point.value.sum }))

const USAGE = { input_tokens: 1200, cache_creation_input_tokens: 300, cache_read_input_tokens: 5000 }

function post(url: string): Promise<string> {
  return fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...anthropicRequest, stream: true }),
  }).then((res) => res.text())
}

describe('otelSink behind an Express gateway', () => {
  let rig: Rig
  afterEach(async () => rig.close())

  describe("span: 'child'", () => {
    beforeEach(async () => {
      rig = await startRig({ span: 'child' })
    })

    it('records token usage, duration and time to first chunk as the record says, and a chat span under the request', async () => {
      rig.upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: anthropicStream({ start: { ...USAGE, output_tokens: 1 }, delta: { ...USAGE, output_tokens: 42 } }),
      })
      await post(rig.url)
      const record = await waitFor(() => rig.records[0], 'the usage record')
      const model = record.model!
      const base = {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'anthropic',
        'gen_ai.request.model': model,
        'gen_ai.response.model': model,
      }
      const histograms = await rig.histograms()
      expect(points(histograms.get('gen_ai.client.token.usage'))).toEqual([
        { attributes: { ...base, 'gen_ai.token.type': 'input' }, sum: 1200 + 300 + 5000 },
        { attributes: { ...base, 'gen_ai.token.type': 'output' }, sum: 42 },
      ])
      expect(points(histograms.get('gen_ai.client.operation.duration'))).toEqual([
        { attributes: base, sum: record.timing.totalMs / 1000 },
      ])
      expect(points(histograms.get('gen_ai.client.operation.time_to_first_chunk'))).toEqual([
        { attributes: base, sum: record.timing.firstByteMs! / 1000 },
      ])

      const server = await waitFor(
        () => rig.spans.getFinishedSpans().find((s) => s.name === 'POST /v1/messages'),
        'server span',
      )
      const chat = rig.spans.getFinishedSpans().find((s) => s.name === `chat ${model}`)
      expect(chat?.attributes).toMatchObject({
        ...base,
        'gen_ai.usage.input_tokens': 6500,
        'gen_ai.usage.output_tokens': 42,
        'gen_ai.usage.cache_read.input_tokens': 5000,
        'gen_ai.usage.cache_write.input_tokens': 300,
      })
      expect(chat?.spanContext().traceId).toBe(server.spanContext().traceId)
      expect(chat?.parentSpanContext?.spanId).toBe(server.spanContext().spanId)
    })

    it('records a request the client left mid-stream, with the tokens known then and error.type aborted', async () => {
      const gate = createGate()
      const chunks = anthropicStream({ start: { ...USAGE, output_tokens: 1 }, delta: { ...USAGE, output_tokens: 42 } })
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks, holdBefore: 2, hold: gate.promise })
      const controller = new AbortController()
      const res = await fetch(`${rig.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...anthropicRequest, stream: true }),
        signal: controller.signal,
      })
      const reader = res.body!.getReader()
      await reader.read()
      controller.abort()
      const record = await waitFor(() => rig.records[0], 'the usage record')
      gate.open()
      expect(record.status).toBe('aborted')

      const histograms = await rig.histograms()
      const input = points(histograms.get('gen_ai.client.token.usage')).find(
        (point) => point.attributes['gen_ai.token.type'] === 'input',
      )
      expect(input).toEqual({
        attributes: expect.objectContaining({ 'error.type': 'aborted', 'gen_ai.provider.name': 'anthropic' }),
        sum: 1200 + 300 + 5000,
      })
      expect(points(histograms.get('gen_ai.client.operation.duration'))[0]?.attributes['error.type']).toBe('aborted')
      const chat = await waitFor(() => rig.spans.getFinishedSpans().find((s) => s.name.startsWith('chat')), 'chat span')
      expect(chat.attributes['gen_ai.usage.input_tokens']).toBe(6500)
    })
  })

  describe("span: 'active'", () => {
    let active: Array<{ spanId: string | undefined; recording: boolean | undefined }>
    beforeEach(async () => {
      active = []
      // Looks at the active span exactly as the default does, and keeps what it saw.
      const span = () => {
        const span = trace.getActiveSpan()
        active.push({ spanId: span?.spanContext().spanId, recording: span?.isRecording() })
        return span
      }
      rig = await startRig({ span })
    })

    it('finds the request span active and still open when the record arrives, and puts the usage on it', async () => {
      rig.upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: anthropicStream({ start: { ...USAGE, output_tokens: 1 }, delta: { ...USAGE, output_tokens: 42 } }),
      })
      await post(rig.url)
      await waitFor(() => rig.records[0], 'the usage record')
      const server = await waitFor(() => rig.spans.getFinishedSpans()[0], 'server span')
      // The record comes as the response finishes, before its 'close' listeners: the HTTP instrumentation
      // ends the server span on 'close', after it (docs/metrics.md#which-span).
      expect(active).toEqual([{ spanId: server.spanContext().spanId, recording: true }])
      expect(server.attributes['gen_ai.usage.input_tokens']).toBe(6500)
      expect(server.attributes['gen_ai.usage.output_tokens']).toBe(42)
    })
  })
})

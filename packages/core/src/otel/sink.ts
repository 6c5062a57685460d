/**
 * The OpenTelemetry sink: each usage record becomes points on the GenAI client histograms and
 * `gen_ai.usage.*` attributes on a span (docs/metrics.md#opentelemetry).
 */
import {
  context,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  ValueType,
  type Attributes,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api'
import { version } from '../../package.json'
import { describeError, warn, type Logger } from '../log.js'
import type { UsageRecord } from '../record.js'
import {
  ATTR_ERROR_TYPE,
  ATTR_OPERATION_NAME,
  ATTR_PROVIDER_NAME,
  ATTR_REQUEST_MODEL,
  ATTR_RESPONSE_MODEL,
  ATTR_TOKEN_TYPE,
  ATTR_USAGE_CACHE_CREATION,
  ATTR_USAGE_CACHE_READ,
  ATTR_USAGE_CACHE_WRITE,
  ATTR_USAGE_INPUT,
  ATTR_USAGE_OUTPUT,
  ATTR_USAGE_REASONING,
  errorTypeOf,
  METRIC_OPERATION_DURATION,
  METRIC_TIME_TO_FIRST_CHUNK,
  METRIC_TOKEN_USAGE,
  OPERATION_CHAT,
  providerOf,
  SECONDS_BUCKETS,
  TOKEN_BUCKETS,
} from './conventions.js'

export interface OtelSinkOptions {
  /** The meter to record on. Default: `meterProvider`'s, else the global one's, `usagewire` at this version. */
  meter?: Meter
  meterProvider?: MeterProvider
  /**
   * Which span gets the `gen_ai.usage.*` attributes:
   * - `'active'` (default): the span active when the record is delivered, if it is still recording;
   * - `'child'`: a new `chat {model}` client span under the active context, covering the request's time;
   * - a function: the span it returns for the record (usagewire sets attributes, never ends it);
   * - `false`: none.
   * Whether the active span is the request's: docs/metrics.md#which-span.
   */
  span?: 'active' | 'child' | false | ((record: UsageRecord) => Span | undefined)
  /** For `span: 'child'`: where the tracer comes from. Default: the global tracer provider. */
  tracerProvider?: TracerProvider
  /** Also write `gen_ai.usage.cache_creation.input_tokens` (the name before `cache_write`) on spans. */
  legacyCacheCreation?: boolean
  /**
   * `gen_ai.provider.name` for a record, when the dialect does not tell the provider (an OpenAI-compatible
   * server such as DeepSeek or Groq). Undefined falls back to the dialect's provider.
   */
  provider?: (record: UsageRecord) => string | undefined
  /** Told when recording fails; recording never throws. */
  logger?: Logger
}

export interface OtelSink {
  readonly name: string
  write(record: UsageRecord): void
}

interface Instruments {
  tokens: Histogram
  duration: Histogram
  firstChunk: Histogram
}

/**
 * A usagewire sink that records each usage record with OpenTelemetry, following the GenAI semantic
 * conventions. Put it in `sinks`. A meter or span that throws is logged, never raised.
 */
export function otelSink(options: OtelSinkOptions = {}): OtelSink {
  const spanChoice = options.span ?? 'active'
  let instruments: Instruments | undefined

  // Instruments are made at the first record, not here: the global MeterProvider is often registered
  // after the gateway's middleware is built, and the metrics API has no proxy that would catch up.
  const instrumentsNow = (): Instruments => (instruments ??= createInstruments(meterOf(options)))

  return {
    name: 'otel',
    write(record: UsageRecord): void {
      let attributes: Attributes | undefined
      try {
        attributes = metricAttributes(record, options)
        recordMetrics(instrumentsNow(), record, attributes)
      } catch (error) {
        warn(options.logger, `otel sink could not record metrics: ${describeError(error)}`)
      }
      if (spanChoice === false) return
      try {
        if (spanChoice === 'child') childSpan(record, attributes ?? metricAttributes(record, options), options)
        else {
          const span = spanChoice === 'active' ? trace.getActiveSpan() : spanChoice(record)
          if (span?.isRecording()) span.setAttributes(usageAttributes(record, options))
        }
      } catch (error) {
        warn(options.logger, `otel sink could not set span attributes: ${describeError(error)}`)
      }
    },
  }
}

function meterOf(options: OtelSinkOptions): Meter {
  if (options.meter) return options.meter
  return (options.meterProvider ?? metrics).getMeter('usagewire', version)
}

function createInstruments(meter: Meter): Instruments {
  return {
    tokens: meter.createHistogram(METRIC_TOKEN_USAGE, {
      description: 'Number of input and output tokens used.',
      unit: '{token}',
      valueType: ValueType.INT,
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    }),
    duration: meter.createHistogram(METRIC_OPERATION_DURATION, {
      description: 'GenAI operation duration.',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    }),
    firstChunk: meter.createHistogram(METRIC_TIME_TO_FIRST_CHUNK, {
      description: 'Time to receive the first chunk of a streaming response.',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    }),
  }
}

/**
 * The attributes of every point: the record's own `attributes` first, then the conventions' (which win a
 * clash, so that dashboards built on the conventions keep working).
 */
function metricAttributes(record: UsageRecord, options: OtelSinkOptions): Attributes {
  const attributes: Attributes = {}
  const own = record.attributes
  // A loop, not a spread: a spread of an object with a new set of keys takes a slow path on every record.
  if (own !== undefined) for (const key of Object.keys(own)) attributes[key] = own[key]
  attributes[ATTR_OPERATION_NAME] = OPERATION_CHAT
  attributes[ATTR_PROVIDER_NAME] = options.provider?.(record) ?? providerOf(record)
  if (record.model !== null) {
    // The record keeps one model: the response's, else the request's (docs/usage-model.md).
    attributes[ATTR_REQUEST_MODEL] = record.model
    attributes[ATTR_RESPONSE_MODEL] = record.model
  }
  const errorType = errorTypeOf(record)
  if (errorType !== undefined) attributes[ATTR_ERROR_TYPE] = errorType
  return attributes
}

function recordMetrics(instruments: Instruments, record: UsageRecord, attributes: Attributes): void {
  const { usage } = record
  // A count nobody reported is not a zero: the conventions ask not to report what is not known.
  if (inputKnown(record)) {
    instruments.tokens.record(usage.input + usage.cacheRead + usage.cacheWrite, withTokenType(attributes, 'input'))
  }
  if (known(record, 'output')) instruments.tokens.record(usage.output, withTokenType(attributes, 'output'))
  instruments.duration.record(record.timing.totalMs / 1000, attributes)
  if (record.streaming && record.timing.firstByteMs !== null) {
    instruments.firstChunk.record(record.timing.firstByteMs / 1000, attributes)
  }
}

/** A copy of `attributes` with `gen_ai.token.type` (the SDK keeps the object it is given: never reused). */
function withTokenType(attributes: Attributes, type: 'input' | 'output'): Attributes {
  const out: Attributes = {}
  for (const key of Object.keys(attributes)) out[key] = attributes[key]
  out[ATTR_TOKEN_TYPE] = type
  return out
}

/** The `gen_ai.usage.*` span attributes of the counts the record knows. */
export function usageAttributes(
  record: UsageRecord,
  options: Pick<OtelSinkOptions, 'legacyCacheCreation'> = {},
): Attributes {
  const { usage } = record
  const attributes: Attributes = {}
  // The conventions' input count includes cached tokens; usagewire's buckets are disjoint.
  if (inputKnown(record)) attributes[ATTR_USAGE_INPUT] = usage.input + usage.cacheRead + usage.cacheWrite
  if (known(record, 'output')) attributes[ATTR_USAGE_OUTPUT] = usage.output
  if (known(record, 'cacheRead')) attributes[ATTR_USAGE_CACHE_READ] = usage.cacheRead
  if (known(record, 'cacheWrite')) {
    attributes[ATTR_USAGE_CACHE_WRITE] = usage.cacheWrite
    if (options.legacyCacheCreation) attributes[ATTR_USAGE_CACHE_CREATION] = usage.cacheWrite
  }
  if (known(record, 'reasoning')) attributes[ATTR_USAGE_REASONING] = usage.reasoning
  return attributes
}

function childSpan(record: UsageRecord, attributes: Attributes, options: OtelSinkOptions): void {
  const tracer = (options.tracerProvider ?? trace).getTracer('usagewire', version)
  const end = Date.now()
  const span = tracer.startSpan(
    record.model ? `${OPERATION_CHAT} ${record.model}` : OPERATION_CHAT,
    {
      kind: SpanKind.CLIENT,
      startTime: end - record.timing.totalMs,
      attributes: { ...attributes, ...usageAttributes(record, options) },
    },
    context.active(),
  )
  if (attributes[ATTR_ERROR_TYPE] !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: record.error ?? String(attributes[ATTR_ERROR_TYPE]) })
  }
  span.end(end)
}

function known(record: UsageRecord, field: 'input' | 'cacheRead' | 'cacheWrite' | 'output' | 'reasoning'): boolean {
  return record.sources[field] !== 'unknown'
}

function inputKnown(record: UsageRecord): boolean {
  return known(record, 'input') || known(record, 'cacheRead') || known(record, 'cacheWrite')
}

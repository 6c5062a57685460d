import { needles } from '../bytes.js'
import { payloadStart } from '../../framing/eventstream.js'
import { findMember } from '../../framing/json-splice.js'
import { pattern, startsWith } from '../../framing/words.js'
import { isObject, type Usage, type UsageSources } from '../../usage.js'
import { anthropicMessages, anthropicText } from '../anthropic-messages/index.js'
import type { DialectReader, DialectSpec, EventReading, JsonObject, WireEvent } from '../types.js'
import { fromInvocationMetrics, METRICS, toInvocationMetrics } from './usage.js'
import { Buffer } from '../../buffer.js'

const METRICS_PATH = [METRICS] as const

/**
 * What every inner event the reader reads contains: Anthropic's `message_start` / `message_delta` /
 * `message_stop` types, a usage block, an error, or Bedrock's metrics. Searched in the decoded `bytes`.
 */
const NEEDLES = needles('"message_', '"usage"', '"error"', 'invocationMetrics')

/**
 * The base64 of how the inner events that can carry none of those begin: Anthropic writes `type` first,
 * so a `bytes` value that starts with one of these is a text delta, a block start or stop, or a ping,
 * and is passed over without decoding it (the whole multiple of 3 bytes of each, so the base64 is exact).
 */
const PASSING = [
  '{"type":"content_block_delta"',
  '{"type":"content_block_start"',
  '{"type":"content_block_stop"',
  '{"type":"ping"',
].map((head) => Buffer.from(head.slice(0, head.length - (head.length % 3))).toString('base64'))
const BYTES_HEAD = '{"bytes":"'

/** A payload that begins `{"bytes":"` and one of the PASSING heads. */
const PASSING_PATTERNS = PASSING.map((head) => pattern(Buffer.from(BYTES_HEAD + head)))

/**
 * Bedrock InvokeModelWithResponseStream with an Anthropic model (docs/dialects/bedrock-invoke.md), framed
 * as an AWS event stream. Each `chunk` frame's JSON payload holds one Anthropic Messages event, base64 in
 * `bytes`; the Anthropic rules apply inside, read and written by the anthropic-messages reader. The last
 * chunk adds `amazon-bedrock-invocationMetrics`, AWS's own counts: they enter the ledger, and the last
 * `message_delta` (one frame earlier) waits for them, so the block Anthropic clients read last carries
 * them (docs/dialects/bedrock-invoke.md#the-last-message_delta-waits-for-the-metrics).
 *
 * InvokeModel (`/invoke`) answers with one Anthropic message as JSON, recognised as anthropic-messages.
 */
export const bedrockInvoke = {
  id: 'bedrock-invoke' as const,
  routes: ['/invoke-with-response-stream', '/invoke'],
  usageEvents: [Buffer.from('chunk')],
  recognizeEvent: (name) => name === 'chunk',
  // An InvokeModel body is an Anthropic message; anthropic-messages recognises it.
  recognizeBody: () => false,
  headUsage: countsFromHeaders,
  // A `chunk` wraps an Anthropic event in base64; a whole InvokeModel body is an Anthropic message.
  text(json, into) {
    if (typeof json.bytes !== 'string') return anthropicText(json, into)
    let inner: unknown
    try {
      inner = JSON.parse(Buffer.from(json.bytes, 'base64').toString('utf8'))
    } catch {
      return
    }
    if (isObject(inner)) anthropicText(inner, into)
  },
  reader: (): DialectReader => new BedrockInvokeReader(),
} satisfies DialectSpec

/** InvokeModel's counts as response headers (docs/dialects/bedrock-invoke.md#invokemodel). */
const HEADERS = [
  ['input', 'x-amzn-bedrock-input-token-count'],
  ['output', 'x-amzn-bedrock-output-token-count'],
  ['cacheRead', 'x-amzn-bedrock-cache-read-input-token-count'],
  ['cacheWrite', 'x-amzn-bedrock-cache-write-input-token-count'],
] as const

function countsFromHeaders(
  header: (name: string) => string | undefined,
): { usage: Usage; sources: UsageSources } | undefined {
  let usage: Usage | undefined
  const sources: UsageSources = {}
  for (const [field, name] of HEADERS) {
    const value = header(name)
    if (value === undefined || !/^\d+$/.test(value.trim())) continue
    ;(usage ??= {})[field] = Number(value)
    sources[field] = name
  }
  return usage && { usage, sources }
}

class BedrockInvokeReader implements DialectReader {
  private readonly anthropic = anthropicMessages.reader()

  mayCarry(): boolean {
    return false // every frame is a named `chunk`; an unnamed one is none of this dialect's
  }

  /**
   * A `chunk` whose base64 begins like an event that carries nothing read here is passed over unread;
   * what decided it is the frame up to the end of that head.
   */
  namedPassing(buf: Buffer, start: number, end: number): number {
    const at = payloadStart(buf, start)
    const offset = buf.byteOffset
    for (let i = 0; i < PASSING_PATTERNS.length; i++) {
      const p = PASSING_PATTERNS[i]!
      const decided = at + p.bytes.length
      if (decided <= end && startsWith(buf, at, p, offset)) return decided - start
    }
    return -1
  }

  unwrap(payload: string): string | undefined {
    let raw: string
    const close = payload.startsWith(BYTES_HEAD) ? payload.indexOf('"', BYTES_HEAD.length) : -1
    if (close !== -1) raw = payload.slice(BYTES_HEAD.length, close)
    else {
      const span = findMember(payload, ['bytes'])
      if (!span || payload.charCodeAt(span[0]) !== 0x22) return undefined
      raw = payload.slice(span[0] + 1, span[1] - 1)
    }
    for (const head of PASSING) if (raw.startsWith(head)) return undefined
    // Base64 never needs escapes, but `/` may be written `\/`.
    const text = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw
    const inner = Buffer.from(text, 'base64')
    for (const needle of NEEDLES) if (inner.includes(needle)) return inner.toString('utf8')
    return undefined
  }

  wrap(payload: string, inner: string): string {
    const [start, end] = findMember(payload, ['bytes'])!
    return `${payload.slice(0, start)}"${Buffer.from(inner, 'utf8').toString('base64')}"${payload.slice(end)}`
  }

  read(event: WireEvent): EventReading | undefined {
    const { json } = event
    const reading = this.anthropic.read(event)
    const metrics = json[METRICS]
    if (isObject(metrics) && !reading?.usage) {
      // The last chunk (Anthropic's `message_stop`): the stream's end and AWS's counts.
      const where = typeof json.type === 'string' ? json.type : 'chunk'
      const { usage, sources } = fromInvocationMetrics(metrics, `${where}.${METRICS}`)
      return {
        ...reading,
        where,
        final: true,
        ended: true,
        usage: { path: METRICS_PATH, native: metrics, usage, sources, field: METRICS },
      }
    }
    if (json.type === 'message_stop') return { where: 'message_stop', ended: true }
    // The metrics come one frame after the message_delta that stops the message.
    if (reading?.final && json.type === 'message_delta') return { ...reading, awaits: true }
    return reading
  }

  readBody(json: JsonObject): EventReading | undefined {
    return this.anthropic.readBody(json)
  }

  write(native: JsonObject, usage: Usage, path: readonly string[]): JsonObject {
    return path[0] === METRICS ? toInvocationMetrics(native, usage) : this.anthropic.write(native, usage, path)
  }
}

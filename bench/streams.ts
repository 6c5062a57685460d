/**
 * Payload builders for the benchmarks: realistic SSE streams as the providers write them, built with the
 * embedded mock upstream's own serializers and usage shapes (examples/mock-upstream), cut into the
 * chunkings the benchmarks feed.
 */
import { deltaUsage, startUsage, ANTHROPIC_MODEL } from '../examples/mock-upstream/anthropic.js'
import { chatStream, chatUsage } from '../examples/mock-upstream/openai-chat.js'
import { responsesStream, responsesUsage } from '../examples/mock-upstream/openai-responses.js'
import { invocationMetrics } from '../examples/mock-upstream/bedrock.js'
import { chunkMessage } from '../examples/mock-upstream/eventstream.js'
import { idFragment, sseEvent } from '../examples/mock-upstream/sse.js'
import type { RequestContext, TrueUsage } from '../examples/mock-upstream/types.js'

export type BenchDialect = 'anthropic' | 'openai-chat' | 'openai-responses' | 'bedrock-invoke'

/** One response body as a list of SSE events (each ending in its blank line). */
export interface BenchStream {
  dialect: BenchDialect
  path: string
  contentType: string
  events: Buffer[]
  /** Indexes of the events that carry a usage object (what the processor must parse). */
  usageEvents: number[]
  bytes: number
}

export const SSE = 'text/event-stream; charset=utf-8'

/** The end-to-end response: 194 deltas + 6 framing events = 200 events (~26 KB), written in 8 chunks. */
export const E2E_DELTAS = 194
export const E2E_WRITES = 8
/**
 * The same response as a provider streams it (row 4i): one event per write, one write every this many
 * ms for each open stream, so each event reaches the gateway as a chunk of its own.
 */
export const PACED_EVERY_MS = 2
/**
 * A long response as it arrives in the field: 1999 deltas + 6 framing events = 2005 events (~257 KB), in
 * writes of at most FIELD_WRITE_BYTES cut on event boundaries. At this size the per-event and per-chunk
 * costs dominate the per-request ones, as they do behind a real provider.
 */
export const FIELD_DELTAS = 1999
export const FIELD_WRITE_BYTES = 1024
/** A held stream: message_start, content_block_start, ping and 5 deltas. */
export const HOLD_EVENTS = 8
/** The slow-client upstream stops after this many bytes (it stalls long before, unless someone buffers). */
export const FLOOD_CAP = 256 * 1024 * 1024

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an ' +
  'they you were her she there been one all we their has would when if so no will more can about said up ' +
  'tokens usage stream gateway provider cache prompt reasoning output input billing budget response event ' +
  'middleware proxy translate complete consistent exactly counter dashboard attribution'
).split(' ')

/** Deterministic pseudo-random text pieces of 2–4 words (the granularity Anthropic deltas have). */
export function textPieces(count: number, seed = 1, wordsPer: [number, number] = [2, 4]): string[] {
  let state = seed * 2654435761
  const rand = (n: number) => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n
  }
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const n = wordsPer[0] + rand(wordsPer[1] - wordsPer[0] + 1)
    let piece = ''
    for (let w = 0; w < n; w++) piece += WORDS[rand(WORDS.length)] + ' '
    out.push(piece)
  }
  return out
}

const TRUTH: TrueUsage = {
  input: 1234,
  cacheRead: 61711,
  cacheWrite: 407,
  cacheWrite5m: 407,
  cacheWrite1h: 0,
  output: 2048,
  reasoning: 0,
}

function ctx(seq: number): RequestContext {
  return { seq, requestedModel: 'bench', includeUsage: true, includeObfuscation: true, created: 1_755_800_000 + seq }
}

function usageIndexes(events: string[], test: (e: string) => boolean): number[] {
  const out: number[] = []
  events.forEach((e, i) => test(e) && out.push(i))
  return out
}

function finish(dialect: BenchDialect, path: string, events: string[], usage: (e: string) => boolean): BenchStream {
  const bufs = events.map((e) => Buffer.from(e, 'utf8'))
  return {
    dialect,
    path,
    contentType: SSE,
    events: bufs,
    usageEvents: usageIndexes(events, usage),
    bytes: bufs.reduce((n, b) => n + b.length, 0),
  }
}

/**
 * A first-party Anthropic Messages stream: message_start (full usage) → content_block_start → ping →
 * `deltas` content_block_delta events of ~128 bytes (2–4 words of text each) → content_block_stop →
 * message_delta (cumulative totals) → message_stop. `pingEvery` adds a ping every so many deltas.
 */
export function anthropicBenchStream(deltas: number, seq = 0, pingEvery = 0): BenchStream {
  const events: string[] = [
    sseEvent(
      {
        type: 'message_start',
        message: {
          id: `msg_01${idFragment(seq, 22)}`,
          type: 'message',
          role: 'assistant',
          model: ANTHROPIC_MODEL,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: startUsage(TRUTH),
        },
      },
      'message_start',
    ),
    sseEvent(
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      'content_block_start',
    ),
    sseEvent('{"type": "ping"}', 'ping'),
  ]
  textPieces(deltas, seq + 1).forEach((text, i) => {
    if (pingEvery > 0 && i > 0 && i % pingEvery === 0) events.push(sseEvent('{"type": "ping"}', 'ping'))
    events.push(
      sseEvent({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }, 'content_block_delta'),
    )
  })
  events.push(sseEvent({ type: 'content_block_stop', index: 0 }, 'content_block_stop'))
  events.push(
    sseEvent(
      { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: deltaUsage(TRUTH) },
      'message_delta',
    ),
  )
  events.push(sseEvent({ type: 'message_stop' }, 'message_stop'))
  return finish(
    'anthropic',
    '/v1/messages',
    events,
    (e) => e.startsWith('event: message_start') || e.startsWith('event: message_delta'),
  )
}

/**
 * An OpenAI Chat Completions stream with `stream_options.include_usage` and obfuscation on (the
 * defaults of the API): `"usage": null` and an `obfuscation` pad on every chunk, one word per chunk,
 * a `choices: []` usage chunk, then `data: [DONE]`.
 */
export function chatBenchStream(words: number, seq = 0): BenchStream {
  const text = textPieces(words, seq + 7, [1, 1]).join('')
  const events = chatStream(ctx(seq), { text, usage: chatUsage(TRUTH) })
  return finish('openai-chat', '/v1/chat/completions', events, (e) => /"usage":\{/.test(e))
}

/** An OpenAI Responses stream from a reasoning model, obfuscation on, one word per output_text.delta. */
export function responsesBenchStream(words: number, seq = 0): BenchStream {
  const text = textPieces(words, seq + 13, [1, 1]).join('')
  const events = responsesStream(ctx(seq), { text, usage: responsesUsage(TRUTH), reasoningItem: true })
  return finish('openai-responses', '/v1/responses', events, (e) => /"usage":\{/.test(e))
}

/**
 * The same response as {@link anthropicBenchStream} as Bedrock's InvokeModelWithResponseStream sends it:
 * one AWS event stream `chunk` frame per Anthropic event (base64 inside JSON, with Bedrock's padding),
 * `amazon-bedrock-invocationMetrics` on the last.
 */
export function bedrockBenchStream(deltas: number, seq = 0): BenchStream {
  const sse = anthropicBenchStream(deltas, seq)
  const events = sse.events.map((e) => JSON.parse(e.toString('utf8').split('\ndata: ')[1]!) as Record<string, unknown>)
  const last = events.length - 1
  events[last] = { ...events[last], 'amazon-bedrock-invocationMetrics': invocationMetrics(TRUTH) }
  const frames = events.map((event, i) =>
    Buffer.from(chunkMessage(event, idFragment(seq + i, 4 + ((seq + i * 7) % 29)))),
  )
  return {
    dialect: 'bedrock-invoke',
    path: '/model/anthropic.claude-sonnet-4-5/invoke-with-response-stream',
    contentType: 'application/vnd.amazon.eventstream',
    events: frames,
    // message_start and message_delta, and the last chunk, which carries the invocation metrics.
    usageEvents: [...sse.usageEvents, last],
    bytes: frames.reduce((n, b) => n + b.length, 0),
  }
}

/** One Buffer per event, each its own allocation (as separate socket reads would be). */
export function oneEventChunks(stream: BenchStream): Buffer[] {
  return stream.events.map((e) => Buffer.from(e))
}

/** The whole body cut every `size` bytes, ignoring event boundaries. */
export function fixedChunks(stream: BenchStream, size: number): Buffer[] {
  const body = Buffer.concat(stream.events)
  const out: Buffer[] = []
  for (let at = 0; at < body.length; at += size) out.push(Buffer.from(body.subarray(at, at + size)))
  return out
}

/** The body cut into `parts` roughly equal pieces on event boundaries (how the e2e upstream writes). */
export function eventGroups(stream: BenchStream, parts: number): Buffer[] {
  const per = Math.ceil(stream.events.length / parts)
  const out: Buffer[] = []
  for (let i = 0; i < stream.events.length; i += per) out.push(Buffer.concat(stream.events.slice(i, i + per)))
  return out
}

/**
 * Consecutive events grouped into writes of at most `bytes` (an event larger than that is a write of its
 * own): the ~1 KB writes a provider's stream arrives in, without cutting an event.
 */
export function sizeGroups(stream: BenchStream, bytes: number): Buffer[] {
  const out: Buffer[] = []
  let group: Buffer[] = []
  let size = 0
  for (const e of stream.events) {
    if (size > 0 && size + e.length > bytes) {
      out.push(Buffer.concat(group))
      group = []
      size = 0
    }
    group.push(e)
    size += e.length
  }
  if (group.length > 0) out.push(Buffer.concat(group))
  return out
}

/**
 * What each client would report, computed from the raw events it received by the accumulation rules of
 * real readers (docs/dialects/anthropic-messages.md#how-sdks-accumulate, openai-chat.md, openai-responses.md).
 * Pure functions of the events: every rule is unit-tested on small event lists (test/doctor/readers.test.ts).
 */
import { at, count, isObject, type Json, type WireEvent } from './wire.js'

/** The client formats the doctor speaks, each with its official SDK. */
export type ClientFormat = 'anthropic' | 'openai-chat' | 'openai-responses'
export const CLIENT_FORMATS: readonly ClientFormat[] = ['anthropic', 'openai-chat', 'openai-responses']

/** Counts as a client format names them: Anthropic `input`…; Chat `prompt`…; Responses `input`…. */
export type Counts = Record<string, number | undefined>

/** What one reader makes of a response: the counts it reports (none: no usage at all), or the error it raises. */
export interface Reading {
  counts?: Counts
  /** The TTL split of cache writes the reader keeps (Anthropic `cache_creation`), when there is one. */
  split?: { m5?: number; h1?: number }
  error?: string
}

/** The counts each format compares, in display order (docs/usage-model.md#how-dialects-map). */
export const FIELDS: Record<ClientFormat, readonly string[]> = {
  anthropic: ['input', 'cacheRead', 'cacheWrite', 'output'],
  'openai-chat': ['prompt', 'cached', 'completion', 'reasoning', 'total'],
  'openai-responses': ['input', 'cached', 'output', 'reasoning', 'total'],
}

// ---- Anthropic Messages ----------------------------------------------------------------------------

export type AnthropicReader = 'sdk' | 'sdk-0.50.0' | 'sdk-0.49' | 'claude-code' | 'start-only'

export const ANTHROPIC_READERS: readonly AnthropicReader[] = [
  'sdk',
  'sdk-0.50.0',
  'sdk-0.49',
  'claude-code',
  'start-only',
]

export const READER_LABELS: Record<string, string> = {
  sdk: 'SDK ≥ 0.50.4',
  'sdk-0.50.0': 'SDK 0.50.0–0.50.3',
  'sdk-0.49': 'SDK ≤ 0.49',
  'claude-code': 'Claude Code',
  'start-only': 'message_start only',
  'chat-sdk': 'SDK: last usage block',
  'responses-sdk': 'SDK: response.completed',
  body: 'the body',
  client: 'the client',
}

/** The Anthropic usage object as counts, absent fields left undefined. */
export function anthropicCounts(usage: unknown): Counts {
  return {
    input: count(at(usage, 'input_tokens')),
    cacheRead: count(at(usage, 'cache_read_input_tokens')),
    cacheWrite: count(at(usage, 'cache_creation_input_tokens')),
    output: count(at(usage, 'output_tokens')),
  }
}

function anthropicSplit(usage: unknown): Reading['split'] {
  const creation = at(usage, 'cache_creation')
  if (!isObject(creation)) return undefined
  return { m5: count(creation.ephemeral_5m_input_tokens), h1: count(creation.ephemeral_1h_input_tokens) }
}

/** The events the Anthropic SDK yields: named events only (it skips unnamed ones and `ping`); an `error` event throws. */
function anthropicSdkEvents(events: WireEvent[]): { events: Json[]; error?: string } {
  const out: Json[] = []
  for (const event of events) {
    if (event.event === null || event.event === 'ping') continue
    if (event.event === 'error') {
      const type = at(event.json, 'error', 'type')
      return { events: out, error: `error event${typeof type === 'string' ? ` (${type})` : ''}` }
    }
    if (!event.data) continue
    if (!isObject(event.json)) return { events: out, error: `malformed JSON in a ${event.event} event` }
    out.push(event.json)
  }
  return { events: out }
}

/**
 * One reader's accumulation of `message_delta.usage` into its snapshot (docs/dialects/anthropic-messages.md
 * #how-sdks-accumulate):
 * - `sdk` (≥ 0.50.4): output always; input and both cache counters when not null;
 * - `sdk-0.50.0` (0.50.0–0.50.3): output always; input when truthy; both cache counters unconditionally, so an
 *   omitted one becomes undefined;
 * - `sdk-0.49` (≤ 0.49): output only;
 * - `claude-code`: every counter the delta states as non-zero;
 * - `start-only` (Portkey's Anthropic → OpenAI path, ccusage-style): output only, input and cache as the start said.
 */
function applyDelta(reader: AnthropicReader, snapshot: Counts, usage: unknown): void {
  const delta = anthropicCounts(usage)
  const raw = (key: string) => at(usage, key)
  switch (reader) {
    case 'sdk':
      snapshot.output = delta.output
      if (raw('input_tokens') != null) snapshot.input = delta.input
      if (raw('cache_creation_input_tokens') != null) snapshot.cacheWrite = delta.cacheWrite
      if (raw('cache_read_input_tokens') != null) snapshot.cacheRead = delta.cacheRead
      return
    case 'sdk-0.50.0':
      snapshot.output = delta.output
      if (delta.input) snapshot.input = delta.input
      snapshot.cacheWrite = delta.cacheWrite
      snapshot.cacheRead = delta.cacheRead
      return
    case 'sdk-0.49':
      snapshot.output = delta.output
      return
    case 'claude-code':
      for (const key of ['input', 'cacheRead', 'cacheWrite', 'output'] as const)
        if (delta[key]) snapshot[key] = delta[key]
      return
    case 'start-only':
      if (raw('output_tokens') != null) snapshot.output = delta.output
      return
  }
}

/**
 * What `reader` reports for a streamed Anthropic response: the usage of `message_start` with each
 * `message_delta` laid over it by the reader's rule. The SDK-based readers (every one but `start-only`)
 * fail as the SDK does: on an `error` event, on a second `message_start`, and when the stream ends without
 * `message_stop` (`finalMessage()` then has no message). A client that left early (`partial`) reports
 * what it had.
 */
export function readAnthropicStream(events: WireEvent[], reader: AnthropicReader, partial = false): Reading {
  const sdk = anthropicSdkEvents(events)
  const strict = reader !== 'start-only'
  let snapshot: Counts | undefined
  let split: Reading['split']
  let stopped = false
  for (const event of sdk.events) {
    switch (event.type) {
      case 'message_start': {
        if (snapshot && strict) return { error: 'a second message_start' }
        const usage = at(event, 'message', 'usage')
        if (snapshot && !strict) break
        snapshot = anthropicCounts(usage)
        split = anthropicSplit(usage)
        break
      }
      case 'message_delta':
        if (snapshot) applyDelta(reader, snapshot, event.usage)
        break
      case 'message_stop':
        if (snapshot) stopped = true
        break
    }
  }
  if (sdk.error && strict) return { error: sdk.error }
  if (!snapshot) return strict && !partial ? { error: 'no message_start' } : {}
  if (!stopped && strict && !partial) return { error: 'the stream ended without message_stop' }
  return { counts: snapshot, ...(split && { split }) }
}

/**
 * The usage a streamed Anthropic response ends with, read past what the SDK rejects (a second
 * `message_start`, no `message_stop`, an `error` event, events after the end): every usage block in order,
 * each `message_start` stating its counts and each `message_delta` laid over them by the current SDK's rule.
 * What the rules check against the truth, so a wrong final count is named even where the SDK throws first.
 * Unnamed events are skipped, as the SDK skips them.
 */
export function readAnthropicFinal(events: WireEvent[]): Reading {
  let snapshot: Counts | undefined
  let split: Reading['split']
  for (const event of events) {
    if (event.event === null || event.event === 'ping' || !isObject(event.json)) continue
    const json = event.json
    if (json.type === 'message_start') {
      const usage = at(json, 'message', 'usage')
      const stated = anthropicCounts(usage)
      snapshot ??= {}
      for (const [key, value] of Object.entries(stated)) if (value !== undefined) snapshot[key] = value
      split = anthropicSplit(usage) ?? split
    } else if (json.type === 'message_delta') applyDelta('sdk', (snapshot ??= {}), json.usage)
  }
  return snapshot ? { counts: snapshot, ...(split && { split }) } : {}
}

/** A non-streaming Anthropic body: its `usage`, as every client reads it. */
export function readAnthropicBody(body: unknown): Reading {
  if (!isObject(body)) return { error: 'the body is not JSON' }
  if (body.type === 'error') return { error: `error body (${String(at(body, 'error', 'type'))})` }
  if (!isObject(body.usage)) return {}
  const split = anthropicSplit(body.usage)
  return { counts: anthropicCounts(body.usage), ...(split && { split }) }
}

// ---- OpenAI Chat Completions ------------------------------------------------------------------------

/** A Chat usage object as counts (docs/dialects/openai-chat.md#fields-and-inclusion). */
export function chatCounts(usage: unknown): Counts {
  return {
    prompt: count(at(usage, 'prompt_tokens')),
    cached: count(at(usage, 'prompt_tokens_details', 'cached_tokens')),
    cacheWrite: count(at(usage, 'prompt_tokens_details', 'cache_write_tokens')),
    completion: count(at(usage, 'completion_tokens')),
    reasoning: count(at(usage, 'completion_tokens_details', 'reasoning_tokens')),
    total: count(at(usage, 'total_tokens')),
  }
}

/**
 * The OpenAI SDK's streamed Chat usage: every chunk's members are laid over the snapshot
 * (`Object.assign`), so the last chunk that has a `usage` key wins, a `usage: null` included; nothing
 * after `[DONE]` is read; a chunk with an `error` throws; a choice without `finish_reason` fails
 * `finalChatCompletion()`. Without `include_usage` there is normally no usage at all.
 */
export function readChatStream(events: WireEvent[], partial = false): Reading {
  let usage: unknown
  let seen = false
  let finished = false
  let chunks = 0
  for (const event of events) {
    if (event.data.startsWith('[DONE]')) break
    if (event.event !== null && event.event.startsWith('thread.')) continue
    if (!isObject(event.json)) return { error: 'malformed JSON in a chunk' }
    const chunk = event.json
    if (chunk.error)
      return { error: `error chunk (${String(at(chunk, 'error', 'type') ?? at(chunk, 'error', 'message'))})` }
    chunks++
    if ('usage' in chunk) {
      usage = chunk.usage
      seen = true
    }
    const choices = Array.isArray(chunk.choices) ? chunk.choices : []
    if (choices.some((choice) => isObject(choice) && typeof choice.finish_reason === 'string')) finished = true
  }
  if (!partial) {
    if (chunks === 0) return { error: 'no chunk' }
    if (!finished) return { error: 'no finish_reason' }
  }
  return seen && isObject(usage) ? { counts: chatCounts(usage) } : {}
}

export function readChatBody(body: unknown): Reading {
  if (!isObject(body)) return { error: 'the body is not JSON' }
  if (body.error) return { error: 'error body' }
  return isObject(body.usage) ? { counts: chatCounts(body.usage) } : {}
}

// ---- OpenAI Responses ---------------------------------------------------------------------------------

/** A Responses usage object as counts (docs/dialects/openai-responses.md#fields-and-inclusion). */
export function responsesCounts(usage: unknown): Counts {
  return {
    input: count(at(usage, 'input_tokens')),
    cached: count(at(usage, 'input_tokens_details', 'cached_tokens')),
    cacheWrite: count(at(usage, 'input_tokens_details', 'cache_write_tokens')),
    output: count(at(usage, 'output_tokens')),
    reasoning: count(at(usage, 'output_tokens_details', 'reasoning_tokens')),
    total: count(at(usage, 'total_tokens')),
  }
}

/**
 * The OpenAI SDK's streamed Responses usage (`responses.stream().finalResponse()`): the snapshot is the
 * `response.created` response (the first event must be it), replaced by the `response.completed` one; so
 * usage comes from `response.completed` only (`response.incomplete` and `response.failed` leave the
 * created snapshot, whose usage is null). An `error` event throws.
 */
export function readResponsesStream(events: WireEvent[], partial = false): Reading {
  let snapshot: unknown
  for (const event of events) {
    if (!isObject(event.json)) {
      if (event.data.startsWith('[DONE]')) continue
      return { error: 'malformed JSON in an event' }
    }
    const type = event.json.type
    if (event.event === 'error' || type === 'error') return { error: 'error event' }
    if (snapshot === undefined) {
      if (type !== 'response.created') return { error: `first event ${String(type)}, not response.created` }
      snapshot = event.json.response
      continue
    }
    if (type === 'response.completed') snapshot = event.json.response
  }
  if (snapshot === undefined) return partial ? {} : { error: 'no response.created' }
  const usage = at(snapshot, 'usage')
  return isObject(usage) ? { counts: responsesCounts(usage) } : {}
}

export function readResponsesBody(body: unknown): Reading {
  if (!isObject(body)) return { error: 'the body is not JSON' }
  if (body.error && body.object !== 'response') return { error: 'error body' }
  return isObject(body.usage) ? { counts: responsesCounts(body.usage) } : {}
}

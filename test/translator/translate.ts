/**
 * The translation core every broken gateway shares: an Anthropic Messages request becomes a call in the
 * upstream wire, and the provider's answer becomes Anthropic Messages again, with the usage bugs of real
 * translators (docs/dialects/anthropic-messages.md#anthropic-compatible-translators):
 * - bedrock-converse: zeros on `message_start`; on `messageStop` a `message_delta` whose `output_tokens` is
 *   the number of text chunks forwarded, and `message_stop`, before the `metadata` frame with the usage has
 *   been read (it is read afterwards and ignored);
 * - openai-responses: zeros on `message_start`; the `message_delta` takes `input_tokens` as OpenAI counts
 *   it (cache included) and drops the cache read;
 * - openai-chat: zeros on `message_start`; the `message_delta`, written on the finish chunk, says
 *   explicit zeros, and the usage chunk after it is ignored.
 */
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { createParser } from 'eventsource-parser'
import type { UpstreamKind } from './common.js'

type Block = { type: string; text?: string }

/** The part of an Anthropic Messages request the translators read. */
export interface MessagesRequest {
  model: string
  max_tokens?: number
  stream?: boolean
  system?: string | Block[]
  messages: Array<{ role: 'user' | 'assistant'; content: string | Block[] }>
}

const textOf = (content: string | Block[] | undefined): string =>
  typeof content === 'string' ? content : (content ?? []).map((block) => block.text ?? '').join('')

/**
 * The call a translator makes for `request`. Bedrock's path names the model; the OpenAI bodies do. A
 * streaming Chat call asks for the usage chunk, which the translator then ignores.
 */
export function upstreamCall(upstream: UpstreamKind, request: MessagesRequest): { path: string; body: object } {
  const messages = request.messages.map((m) => ({ role: m.role, text: textOf(m.content) }))
  const system = request.system === undefined ? undefined : textOf(request.system)
  switch (upstream) {
    case 'bedrock-converse':
      return {
        path: `/model/${encodeURIComponent(request.model)}/${request.stream ? 'converse-stream' : 'converse'}`,
        body: {
          messages: messages.map((m) => ({ role: m.role, content: [{ text: m.text }] })),
          ...(system ? { system: [{ text: system }] } : {}),
          inferenceConfig: { maxTokens: request.max_tokens ?? 1024 },
        },
      }
    case 'openai-responses':
      return {
        path: '/v1/responses',
        body: {
          model: request.model,
          input: messages.map((m) => ({ role: m.role, content: m.text })),
          ...(system ? { instructions: system } : {}),
          max_output_tokens: request.max_tokens,
          stream: !!request.stream,
        },
      }
    case 'openai-chat':
      return {
        path: '/v1/chat/completions',
        body: {
          model: request.model,
          messages: [
            ...(system ? [{ role: 'system', content: system }] : []),
            ...messages.map((m) => ({ role: m.role, content: m.text })),
          ],
          max_tokens: request.max_tokens,
          stream: !!request.stream,
          ...(request.stream ? { stream_options: { include_usage: true } } : {}),
        },
      }
  }
}

const STOP_REASONS: Record<string, string> = { stop: 'end_turn', length: 'max_tokens', completed: 'end_turn' }
const stopReason = (reason: unknown): string => STOP_REASONS[String(reason)] ?? String(reason ?? 'end_turn')

const MESSAGE_ID = 'msg_translated_01'

/** Anthropic Messages SSE, written as the translator learns things; `take()` hands over what is pending. */
class AnthropicWriter {
  private pending = ''
  private blockOpen = false
  /** Text chunks forwarded. */
  chunks = 0
  started = false
  /** `message_stop` is written: the client's answer is over. */
  done = false

  constructor(private readonly model: string) {}

  private event(type: string, data: object): void {
    this.pending += `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  }

  start(): void {
    if (this.started) return
    this.started = true
    const message = {
      id: MESSAGE_ID,
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 0, output_tokens: 0 },
    }
    this.event('message_start', { message })
  }

  text(text: string): void {
    if (this.done || text === '') return
    this.start()
    if (!this.blockOpen) this.event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })
    this.blockOpen = true
    this.event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })
    this.chunks++
  }

  closeBlock(): void {
    if (this.blockOpen) this.event('content_block_stop', { index: 0 })
    this.blockOpen = false
  }

  finish(reason: string, usage: Record<string, number>): void {
    if (this.done) return
    this.start()
    this.closeBlock()
    this.event('message_delta', { delta: { stop_reason: reason, stop_sequence: null }, usage })
    this.event('message_stop', {})
    this.done = true
  }

  take(): string {
    const out = this.pending
    this.pending = ''
    return out
  }
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
)

/** AWS event stream messages out of bytes that arrive in pieces of any size (a frame may span several). */
function frameReader(onFrame: (eventType: string, payload: Record<string, unknown>) => void) {
  let buffered = Buffer.alloc(0)
  return (chunk: Uint8Array): void => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 4 && buffered.length >= buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0)
      const message = codec.decode(buffered.subarray(0, length))
      buffered = buffered.subarray(length)
      const eventType = message.headers[':event-type']?.value
      if (message.headers[':message-type']?.value !== 'event' || typeof eventType !== 'string') continue
      onFrame(eventType, JSON.parse(Buffer.from(message.body).toString('utf8')) as Record<string, unknown>)
    }
  }
}

/** The JSON `data` of each SSE event out of bytes in pieces of any size (`[DONE]` is skipped). */
function sseReader(onData: (data: Record<string, unknown>) => void) {
  const decoder = new TextDecoder()
  const parser = createParser({
    onEvent: (event) => {
      if (event.data !== '[DONE]') onData(JSON.parse(event.data) as Record<string, unknown>)
    },
  })
  return (chunk: Uint8Array): void => parser.feed(decoder.decode(chunk, { stream: true }))
}

type Json = Record<string, any>

/** The provider's streamed events, each turned into what the translator writes (bugs included). */
function reader(upstream: UpstreamKind, out: AnthropicWriter): (chunk: Uint8Array) => void {
  switch (upstream) {
    case 'bedrock-converse':
      return frameReader((eventType, payload: Json) => {
        if (eventType === 'messageStart') out.start()
        else if (eventType === 'contentBlockDelta') out.text(payload.delta?.text ?? '')
        else if (eventType === 'contentBlockStop') out.closeBlock()
        // The stop ends the answer at once; the usage in `metadata`, still to come, is never looked at.
        else if (eventType === 'messageStop') out.finish(stopReason(payload.stopReason), { output_tokens: out.chunks })
      })
    case 'openai-responses':
      return sseReader((event: Json) => {
        if (event.type === 'response.created') out.start()
        else if (event.type === 'response.output_text.delta') out.text(event.delta ?? '')
        else if (event.type === 'response.output_item.done') out.closeBlock()
        else if (event.type === 'response.completed') {
          const usage = event.response?.usage ?? {}
          // OpenAI's input_tokens includes the cache read, which is dropped: input counts it, no cache field.
          out.finish('end_turn', { input_tokens: usage.input_tokens ?? 0, output_tokens: usage.output_tokens ?? 0 })
        }
      })
    case 'openai-chat':
      return sseReader((chunk: Json) => {
        out.start()
        const choice = chunk.choices?.[0]
        if (!choice) return // the usage chunk: ignored
        if (typeof choice.delta?.content === 'string') out.text(choice.delta.content)
        if (choice.finish_reason)
          out.finish(stopReason(choice.finish_reason), {
            input_tokens: 0,
            output_tokens: 0,
            cache_read_input_tokens: 0,
          })
      })
  }
}

/** Where the client's answer goes: raw writes, a stream body, a proxied response. */
export interface ClientSink {
  write(text: string): void
  end(): void
}

/**
 * Translates the provider's streamed body onto `client` as it arrives. `message_stop` ends the client's
 * response at once, and the rest of the provider's body is read and ignored. A provider that breaks off
 * leaves the client with what was translated so far, ended as if it were whole.
 */
export async function relayStream(
  upstream: UpstreamKind,
  model: string,
  body: AsyncIterable<Uint8Array>,
  client: ClientSink,
): Promise<void> {
  const out = new AnthropicWriter(model)
  const read = reader(upstream, out)
  let ended = false
  try {
    for await (const chunk of body) {
      if (ended) continue
      read(chunk)
      const text = out.take()
      if (text) client.write(text)
      if (out.done) {
        ended = true
        client.end()
      }
    }
  } catch {
    // The provider broke off: nothing more will come.
  }
  if (!ended) client.end()
}

/** A whole (non-streaming) provider answer as the translator writes it: an Anthropic Messages JSON body. */
export function translateBody(upstream: UpstreamKind, model: string, raw: Buffer): object {
  const body = JSON.parse(raw.toString('utf8')) as Json
  let pieces: string[]
  let reason: string
  let usage: Record<string, number>
  switch (upstream) {
    case 'bedrock-converse':
      pieces = ((body.output?.message?.content ?? []) as Block[]).map((block) => block.text ?? '')
      reason = stopReason(body.stopReason)
      // Output is the number of text chunks forwarded, here the content blocks; the usage is never read.
      usage = { input_tokens: 0, output_tokens: pieces.length }
      break
    case 'openai-responses':
      pieces = ((body.output ?? []) as Json[]).flatMap((item) =>
        ((item.content ?? []) as Block[]).filter((part) => part.type === 'output_text').map((part) => part.text ?? ''),
      )
      reason = stopReason(body.status)
      usage = { input_tokens: body.usage?.input_tokens ?? 0, output_tokens: body.usage?.output_tokens ?? 0 }
      break
    case 'openai-chat':
      pieces = [String(body.choices?.[0]?.message?.content ?? '')]
      reason = stopReason(body.choices?.[0]?.finish_reason)
      usage = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 }
      break
  }
  return {
    id: MESSAGE_ID,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text: pieces.join('') }],
    stop_reason: reason,
    stop_sequence: null,
    usage,
  }
}

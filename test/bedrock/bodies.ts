/**
 * Bedrock InvokeModelWithResponseStream bodies as AWS sends them (docs/dialects/bedrock-invoke.md): AWS
 * event stream frames, each `chunk` a JSON payload whose base64 `bytes` is one Anthropic event.
 */
import { crc32 } from 'node:zlib'

/** One event stream message with string headers, encoded by hand (prelude, headers, payload, two CRCs). */
export function frame(headers: Record<string, string>, payload: string): Buffer {
  const parts: Buffer[] = []
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name)
    const v = Buffer.from(value)
    const head = Buffer.alloc(1 + n.length + 3)
    head[0] = n.length
    n.copy(head, 1)
    head[1 + n.length] = 7 // string
    head.writeUInt16BE(v.length, 2 + n.length)
    parts.push(head, v)
  }
  const headerBytes = Buffer.concat(parts)
  const body = Buffer.from(payload)
  const total = 12 + headerBytes.length + body.length + 4
  const out = Buffer.alloc(total)
  out.writeUInt32BE(total, 0)
  out.writeUInt32BE(headerBytes.length, 4)
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8)
  headerBytes.copy(out, 12)
  body.copy(out, 12 + headerBytes.length)
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4)
  return out
}

/** A `chunk` frame carrying `event`, with `p` padding as Bedrock adds it. */
export function chunk(event: object, padding = 'abcdefghij'): Buffer {
  const bytes = Buffer.from(JSON.stringify(event)).toString('base64')
  return frame(
    { ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' },
    JSON.stringify({ bytes, p: padding }),
  )
}

export function exception(type: string, message: string): Buffer {
  return frame(
    { ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' },
    JSON.stringify({ message }),
  )
}

/** The Anthropic events of a short answer; `start` and `delta` are the usage blocks, `metrics` AWS's counts. */
export function anthropicStream(options: {
  start?: object | null
  delta?: object | null
  metrics?: object | null
  model?: string
}): Buffer {
  const model = options.model ?? 'claude-sonnet-4-5-20250929'
  const message: Record<string, unknown> = {
    id: 'msg_bdrk_01',
    type: 'message',
    role: 'assistant',
    model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
  }
  if (options.start !== null) message.usage = options.start ?? { input_tokens: 12, output_tokens: 1 }
  const delta: Record<string, unknown> = {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
  }
  if (options.delta !== null) delta.usage = options.delta ?? { output_tokens: 9 }
  const stop: Record<string, unknown> = { type: 'message_stop' }
  if (options.metrics !== null) {
    stop['amazon-bedrock-invocationMetrics'] = options.metrics ?? {
      inputTokenCount: 12,
      outputTokenCount: 9,
      invocationLatency: 812,
      firstByteLatency: 403,
    }
  }
  return Buffer.concat([
    chunk({ type: 'message_start', message }),
    chunk({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }, 'abcdefghijklmnopq'),
    chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' from Bedrock.' } }, 'abc'),
    chunk({ type: 'content_block_stop', index: 0 }),
    chunk(delta),
    chunk(stop),
  ])
}

/**
 * A ConverseStream frame (docs/dialects/bedrock-converse.md#conversestream): `:event-type` names the
 * union member and the payload is that member's JSON, with `p` padding beside it.
 */
export function converseEvent(type: string, payload: object, padding = 'abcdefgh'): Buffer {
  return frame(
    { ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' },
    JSON.stringify({ ...payload, p: padding }),
  )
}

/** A short ConverseStream answer; `usage` is the `metadata` event's, which `cut` leaves out. */
export function converseStream(options: { usage?: object | null; text?: string[]; cut?: boolean }): Buffer {
  const text = options.text ?? ['Hello', ' from Converse.']
  const usage = options.usage === undefined ? { inputTokens: 12, outputTokens: 9, totalTokens: 21 } : options.usage
  const frames = [
    converseEvent('messageStart', { role: 'assistant' }),
    ...text.map((t, n) =>
      converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } }, 'ab'.repeat(n + 1)),
    ),
    converseEvent('contentBlockStop', { contentBlockIndex: 0 }),
    converseEvent('messageStop', { stopReason: 'end_turn' }),
  ]
  if (!options.cut) {
    const metadata = { ...(usage !== null && { usage }), metrics: { latencyMs: 812 } }
    frames.push(converseEvent('metadata', metadata, 'abcdefghijklmnop'))
  }
  return Buffer.concat(frames)
}

/** A Converse (non-streaming) answer body with `usage`. */
export function converseBody(usage: object, text = 'Hello from Converse.'): Buffer {
  return Buffer.from(
    JSON.stringify({
      output: { message: { role: 'assistant', content: [{ text }] } },
      stopReason: 'end_turn',
      usage,
      metrics: { latencyMs: 640 },
    }),
  )
}

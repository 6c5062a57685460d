/**
 * AWS event stream messages (docs/dialects/bedrock-invoke.md#the-event-stream), encoded and decoded by
 * @smithy/eventstream-codec, the codec the AWS SDKs check frames with (lengths and both CRCs).
 */
import { EventStreamCodec, type Message } from '@smithy/eventstream-codec'

type Headers = Message['headers']

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
)

function stringHeaders(headers: Record<string, string>): Headers {
  const out: Headers = {}
  for (const [name, value] of Object.entries(headers)) out[name] = { type: 'string', value }
  return out
}

/**
 * A Bedrock `chunk` message: a JSON payload whose `bytes` is `event` in base64, and `p`, the padding
 * Bedrock adds against length side channels.
 */
export function chunkMessage(event: object, padding: string): Uint8Array {
  const bytes = Buffer.from(JSON.stringify(event)).toString('base64')
  return codec.encode({
    headers: stringHeaders({ ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' }),
    body: Buffer.from(JSON.stringify({ bytes, p: padding })),
  })
}

/**
 * A ConverseStream event: a message named after its member of the union (`messageStart`, `metadata`, …) whose
 * payload is that member's JSON, with the `p` padding beside its fields (docs/dialects/bedrock-converse.md).
 */
export function eventMessage(eventType: string, payload: object, padding: string): Uint8Array {
  return codec.encode({
    headers: stringHeaders({ ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' }),
    body: Buffer.from(JSON.stringify({ ...payload, p: padding })),
  })
}

/** The JSON each `chunk` message of a body carries in `bytes`, in order; other messages are skipped. */
export function decodeChunks(body: Buffer): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = []
  for (let at = 0; at + 4 <= body.length;) {
    const length = body.readUInt32BE(at)
    const message = codec.decode(body.subarray(at, at + length))
    at += length
    if (message.headers[':event-type']?.value !== 'chunk') continue
    const payload = JSON.parse(Buffer.from(message.body).toString('utf8')) as { bytes?: string }
    if (typeof payload.bytes === 'string')
      events.push(JSON.parse(Buffer.from(payload.bytes, 'base64').toString('utf8')))
  }
  return events
}

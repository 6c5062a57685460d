import { DEFAULT_ROUTES } from '../routes.js'
import { createMeter } from '../meter.js'
import type { UsageRecord } from '../record.js'

export interface InspectOptions {
  /** Request path the body answered, e.g. `/v1/messages`; chooses the dialect. */
  path?: string
  /** Response content type; default: `text/event-stream` when the body looks like SSE, else `application/json`. */
  contentType?: string
  httpStatus?: number
  /** Cut the body into chunks of these sizes (cycled) before pushing, as a network would. */
  chunks?: number[]
  /** Simulate a client that disconnects after this many bytes of the body were received. */
  abortAfterBytes?: number
  maxEventBytes?: number
}

export interface InspectResult {
  record: UsageRecord
  /** The bytes the client would receive. */
  output: Buffer
}

function guessContentType(body: Buffer): string {
  const head = body
    .subarray(0, 64)
    .toString('utf8')
    .replace(/^\ufeff/, '')
    .trimStart()
  return /^(event|data|id|retry)?:/.test(head) || head.startsWith('event:') || head.startsWith('data:')
    ? 'text/event-stream'
    : 'application/json'
}

/**
 * Runs a captured response body through the same Exchange a gateway uses, and returns the record and the
 * bytes the client would receive.
 */
export function inspect(body: Uint8Array | string, options: InspectOptions = {}): InspectResult {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body)
  const contentType = options.contentType ?? guessContentType(bytes)
  let record: UsageRecord | undefined
  // Any path is read here: a dialect the path does not name is recognised from the body.
  const meter = createMeter({
    routes: [...DEFAULT_ROUTES, { path: /(?:)/ }],
    maxEventBytes: options.maxEventBytes,
    onUsage: (r) => {
      record = r
    },
  })
  const exchange = meter.begin({
    method: 'POST',
    url: options.path ?? '/',
    headers: (name) => (name === 'x-request-id' ? 'inspect' : undefined),
  })!
  const decision = exchange.respond(
    { status: options.httpStatus ?? 200, headers: (name) => (name === 'content-type' ? contentType : undefined) },
    { decoders: [] },
  )
  const output: Uint8Array[] = []
  const limit = Math.min(options.abortAfterBytes ?? bytes.length, bytes.length)
  const aborted = options.abortAfterBytes !== undefined && options.abortAfterBytes < bytes.length
  if (!decision.read) {
    output.push(bytes.subarray(0, limit))
  } else {
    const sizes = options.chunks?.length ? options.chunks : [Math.max(limit, 1)]
    let at = 0
    for (let n = 0; at < limit; n++) {
      const size = Math.max(1, sizes[n % sizes.length]!)
      const chunk = bytes.subarray(at, Math.min(at + size, limit))
      at += chunk.length
      output.push(...exchange.push(chunk))
    }
    if (!aborted) output.push(...exchange.end().chunks)
  }
  exchange.finish(aborted ? { kind: 'abort' } : { kind: 'end' })
  // A captured body has no timing of its own: the record says so, and stays the same on every run.
  return { record: { ...record!, timing: { firstByteMs: null, totalMs: 0 } }, output: Buffer.concat(output) }
}

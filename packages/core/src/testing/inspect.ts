import { createProcessor } from './processor.js'
import { buildRecord, type UsageRecord } from './record.js'

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

/** Runs a captured response body through usagewire, as a gateway would, and returns the record and output. */
export function inspect(body: Uint8Array | string, options: InspectOptions = {}): InspectResult {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body)
  const contentType = options.contentType ?? guessContentType(bytes)
  const processor = createProcessor({ path: options.path, contentType, maxEventBytes: options.maxEventBytes })
  const output: Uint8Array[] = []
  const limit = Math.min(options.abortAfterBytes ?? bytes.length, bytes.length)
  const sizes = options.chunks?.length ? options.chunks : [Math.max(limit, 1)]
  let at = 0
  for (let n = 0; at < limit; n++) {
    const size = Math.max(1, sizes[n % sizes.length]!)
    const chunk = bytes.subarray(at, Math.min(at + size, limit))
    at += chunk.length
    output.push(...processor.push(chunk))
  }
  const aborted = options.abortAfterBytes !== undefined && options.abortAfterBytes < bytes.length
  if (!aborted) output.push(...processor.end())
  const record = buildRecord(processor.result(), {
    id: 'inspect',
    route: (options.path ?? '').split('?')[0] ?? '',
    method: 'POST',
    httpStatus: options.httpStatus ?? 200,
    aborted,
    firstByteMs: null,
    totalMs: 0,
  })
  return { record, output: Buffer.concat(output) }
}

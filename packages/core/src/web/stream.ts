import type { Carrier, Exchange, HeadDecision } from '../exchange.js'
import { opensZlib } from '../deflate.js'
import { describeError } from '../log.js'

/** What a WHATWG carrier can decode: DecompressionStream's formats where the runtime has it. */
export const WEB_CARRIER: Carrier = {
  decoders: typeof DecompressionStream === 'function' ? ['gzip', 'x-gzip', 'deflate'] : [],
}

/** What a carrier that watches the body's source tells {@link usageTransformStream}. */
export interface UsageTransformOptions {
  /**
   * The error the source failed with, if it did. A transformer is cancelled both when its reader goes
   * away and when the source it is piped from fails; with this, the first is `abort` whatever reason
   * the reader gave (an AbortSignal's AbortError), the second `cut`. Without it, a cancel with a
   * reason is taken for a failure.
   */
  sourceError?: () => unknown
}

/**
 * A WHATWG TransformStream that carries one Exchange's (decoded) body, for fetch-style gateways:
 * `response.body.pipeThrough(usageTransformStream(exchange))`. It finishes the Exchange into its record
 * when the body ends, or is cancelled (`abort`) or errors (`cut`).
 */
export function usageTransformStream(
  exchange: Exchange,
  options: UsageTransformOptions = {},
): TransformStream<Uint8Array, Uint8Array> {
  const enqueue = (controller: TransformStreamDefaultController<Uint8Array>, chunks: Uint8Array[]) => {
    for (const chunk of chunks) if (chunk.length > 0) controller.enqueue(chunk)
  }
  const transformer: ConstructorParameters<typeof TransformStream<Uint8Array, Uint8Array>>[0] & {
    cancel?: (reason: unknown) => void
  } = {
    // A hold released before the body ends (a held message_start) sends what it kept through here.
    start(controller) {
      exchange.connect({ write: (held) => enqueue(controller, held), end: () => {} })
    },
    transform(chunk, controller) {
      enqueue(controller, exchange.push(chunk))
    },
    flush(controller) {
      return new Promise<void>((resolve) => {
        const done = () => {
          exchange.finish({ kind: 'end' })
          resolve()
        }
        const { chunks, deferred } = exchange.end({ write: (held) => enqueue(controller, held), end: done })
        enqueue(controller, chunks)
        if (!deferred) done()
      })
    },
    // Runtimes that follow the current Streams spec tell a transformer when its reader went away.
    cancel(reason: unknown) {
      const failed = options.sourceError ? options.sourceError() : reason
      exchange.finish(failed === undefined ? { kind: 'abort' } : { kind: 'cut', reason: describeError(failed) })
    },
  }
  return new TransformStream<Uint8Array, Uint8Array>(transformer)
}

/**
 * The response a fetch-style gateway returns instead of `response`: the same status and headers, except
 * those the Exchange's decision removes, and a body carried through the Exchange. A response that is not
 * read is returned as it is, and its record is written at once.
 */
export function carryResponse(exchange: Exchange, response: Response): Response {
  const decision: HeadDecision = exchange.respond(
    { status: response.status, headers: (name) => response.headers.get(name) },
    WEB_CARRIER,
  )
  if (!decision.read) {
    exchange.finish({ kind: 'end' })
    return response
  }
  if (response.bodyUsed || response.body?.locked) {
    // Read, or being read, by someone else: it cannot be carried, and is left as it is.
    exchange.passthrough('the response body was read already')
    exchange.finish({ kind: 'end' })
    return response
  }
  if (!response.body) {
    // No body is an empty one: the record says what an empty body of this kind is.
    exchange.end()
    exchange.finish({ kind: 'end' })
    return response
  }
  const headers = new Headers(response.headers)
  for (const name of decision.remove) headers.delete(name)
  // The head leaves before the body is read, and the body may be rewritten: an ETag would tag another body.
  headers.delete('etag')
  let failed: unknown
  let body = watched(response.body, (error) => (failed = error ?? new Error('the response body failed')))
  if (decision.decode === 'deflate') body = inflated(body)
  else if (decision.decode) body = body.pipeThrough(decompression('gzip'))
  return new Response(body.pipeThrough(usageTransformStream(exchange, { sourceError: () => failed })), {
    status: response.status,
    statusText: response.statusText,
    headers,
  })
}

/**
 * `source` as it is, with its failure told to `onError` before it goes on down the pipe: what cancels
 * the carrier is then known to be the source, not the reader.
 */
function watched(source: ReadableStream<Uint8Array>, onError: (error: unknown) => void): ReadableStream<Uint8Array> {
  const reader = source.getReader()
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await reader.read()
          if (next.done) controller.close()
          else controller.enqueue(next.value)
        } catch (error) {
          onError(error)
          controller.error(error)
        }
      },
      cancel(reason) {
        return reader.cancel(reason)
      },
    },
    { highWaterMark: 0 },
  )
}

const decompression = (format: 'gzip' | 'deflate' | 'deflate-raw'): TransformStream<Uint8Array, Uint8Array> =>
  new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>

/**
 * A `deflate` body decoded, zlib-wrapped or raw, as its first two bytes tell (docs/transport.md#content-encoding):
 * they are read before the decoder is chosen, then passed to it with the rest.
 */
function inflated(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = source.getReader()
  let decoded: ReadableStreamDefaultReader<Uint8Array> | undefined
  const choose = async (): Promise<ReadableStreamDefaultReader<Uint8Array>> => {
    const head: Uint8Array[] = []
    let length = 0
    let ended = false
    while (length < 2) {
      const next = await reader.read()
      if (next.done) {
        ended = true
        break
      }
      head.push(next.value)
      length += next.value.length
    }
    const first = head.length === 1 ? head[0]! : concat(head, length)
    const replay = new ReadableStream<Uint8Array>(
      {
        start(controller) {
          if (first.length > 0) controller.enqueue(first)
          if (ended) controller.close()
        },
        async pull(controller) {
          const next = await reader.read()
          if (next.done) controller.close()
          else controller.enqueue(next.value)
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    )
    const wrapped = first.length >= 2 && opensZlib(first[0]!, first[1]!)
    return replay.pipeThrough(decompression(wrapped ? 'deflate' : 'deflate-raw')).getReader()
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        decoded ??= await choose()
        const next = await decoded.read()
        if (next.done) controller.close()
        else controller.enqueue(next.value)
      },
      cancel: (reason) => (decoded ? decoded.cancel(reason) : reader.cancel(reason)),
    },
    { highWaterMark: 0 },
  )
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}

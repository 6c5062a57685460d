import type { Carrier, Exchange, HeadDecision } from '../exchange.js'

/** What a WHATWG carrier can decode: DecompressionStream's formats where the runtime has it. */
export const WEB_CARRIER: Carrier = {
  decoders: typeof DecompressionStream === 'function' ? ['gzip', 'x-gzip', 'deflate'] : [],
}

/**
 * A WHATWG TransformStream that carries one Exchange's (decoded) body, for fetch-style gateways:
 * `response.body.pipeThrough(usageTransformStream(exchange))`. It finishes the Exchange into its record
 * when the body ends, or is cancelled (`abort`) or errors (`cut`).
 */
export function usageTransformStream(exchange: Exchange): TransformStream<Uint8Array, Uint8Array> {
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
      exchange.finish(reason === undefined ? { kind: 'abort' } : { kind: 'cut', reason: String(reason) })
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
  if (!decision.read || !response.body) {
    exchange.finish({ kind: 'end' })
    return response
  }
  const headers = new Headers(response.headers)
  for (const name of decision.remove) headers.delete(name)
  let body: ReadableStream<Uint8Array> = response.body
  if (decision.decode) {
    const format = decision.decode === 'x-gzip' ? 'gzip' : (decision.decode as 'gzip' | 'deflate')
    body = body.pipeThrough(new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>)
  }
  return new Response(body.pipeThrough(usageTransformStream(exchange)), {
    status: response.status,
    statusText: response.statusText,
    headers,
  })
}

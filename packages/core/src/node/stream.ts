import { Transform, type TransformCallback } from 'node:stream'
import type { Exchange, HeadDecision } from '../exchange.js'
import { createDecoder } from './decode.js'

/**
 * Told once, before the first byte of the body leaves: `length` is the whole body's when it was read to
 * its end by then (a JSON body is held until its end), undefined when bytes leave before the end.
 */
export type HeadDue = (length: number | undefined) => void

/**
 * A Node Transform that carries one Exchange's body: `upstream.pipe(new UsageTransform(exchange,
 * decision)).pipe(res)`, for stream-style adapters (Koa's `ctx.body`, Fastify's `onSend` payload). It
 * decodes the content-encoding the Exchange chose, rewrites usage, and finishes the Exchange into its
 * record when the body ends (`end`), is destroyed with an error (`cut`) or without one (`abort`).
 */
export class UsageTransform extends Transform {
  private readonly decoder: Transform | undefined
  private flushed: TransformCallback | undefined
  private ended = false
  private headDue: HeadDue | undefined

  constructor(
    readonly exchange: Exchange,
    decision: Extract<HeadDecision, { read: true }>,
    /** For a carrier that can still change the head when the body's first byte leaves (see {@link HeadDue}). */
    headDue?: HeadDue,
  ) {
    super()
    this.headDue = headDue
    // A hold released before the body ends (a held message_start) sends what it kept through here.
    exchange.connect({ write: (held) => this.forward(held), end: () => this.done() })
    if (decision.decode) {
      const decoder = createDecoder(decision.decode)
      if (decoder) {
        this.decoder = decoder
        decoder.on('data', (data: Buffer) => this.forward(this.exchange.push(data)))
        decoder.on('error', (error: Error) => {
          // A body that cannot be decoded leaves as far as it was decoded: its rest is not readable.
          this.forward(this.exchange.passthrough(`content-encoding ${decision.decode}: ${error.message}`))
          this.finishBody()
        })
        decoder.on('end', () => this.finishBody())
      }
    }
  }

  private forward(chunks: Uint8Array[]): void {
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      if (this.headDue) this.announce(undefined)
      this.push(chunk)
    }
  }

  private announce(length: number | undefined): void {
    const due = this.headDue
    this.headDue = undefined
    due?.(length)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.decoder) {
      this.decoder.write(chunk, () => callback())
      return
    }
    this.forward(this.exchange.push(chunk))
    callback()
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback
    if (this.decoder) this.decoder.end()
    else this.finishBody()
  }

  private finishBody(): void {
    if (this.ended) return
    this.ended = true
    const { chunks, deferred } = this.exchange.end({
      write: (held) => this.forward(held),
      end: () => this.done(),
    })
    // Read to its end with nothing sent yet: its length is known, unless a hold keeps part of it.
    if (this.headDue) this.announce(deferred ? undefined : chunks.reduce((sum, chunk) => sum + chunk.length, 0))
    this.forward(chunks)
    if (!deferred) this.done()
  }

  private done(): void {
    const callback = this.flushed
    this.flushed = undefined
    callback?.()
    this.exchange.finish({ kind: 'end' })
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.decoder?.destroy()
    if (error) this.exchange.finish({ kind: 'cut', reason: error.message })
    else this.exchange.finish({ kind: 'abort' })
    callback(error)
  }
}

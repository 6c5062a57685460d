import { Readable, Transform, type TransformCallback } from 'node:stream'
import type { Exchange, HeadDecision } from '../exchange.js'
import { createDecoder } from './decode.js'

/**
 * Told once, before the first byte of the body leaves: `length` is the whole body's when it was read to
 * its end by then (a JSON body is held until its end), undefined when bytes leave before the end.
 */
export type HeadDue = (length: number | undefined) => void

type Read = Extract<HeadDecision, { read: true }>

/**
 * What a stream carrier of one Exchange's body does whatever its kind of stream: decodes the
 * content-encoding the Exchange chose, rewrites usage, tells the head before the first byte leaves, and
 * finishes the Exchange into its record when the body ends (`end`), fails (`cut`) or is dropped (`abort`).
 * `push` sends bytes on (false: the reader is full), `done` ends the carried body.
 */
/** What a carrier may tell a {@link BodyCarry} about the response it carries the body for. */
export interface CarryOptions {
  /** For a carrier that can still change the head when the body's first byte leaves (see {@link HeadDue}). */
  headDue?: HeadDue | undefined
  /** True once the client went away before the response ended (see `BodyCarry.destroyed`). */
  clientLeft?: (() => boolean) | undefined
  /**
   * The carrier finishes the Exchange itself, once the response was sent: a body read to its end does
   * not (one cut or dropped still does). For a framework that may still send something else in its
   * place (a later Fastify onSend hook that fails sends an error reply).
   */
  deferRecord?: boolean | undefined
}

class BodyCarry {
  private readonly decoder: Transform | undefined
  private ended = false
  /** The whole body was handed on: what destroys the carried body after that cuts nothing. */
  private completed = false
  private headDue: HeadDue | undefined
  // Let go of once the body is carried or destroyed: it reaches the response, and through its socket the
  // requests that come after it, while a framework may keep the carried body long after (Koa does).
  private clientLeft: (() => boolean) | undefined
  private readonly deferRecord: boolean

  constructor(
    private readonly exchange: Exchange,
    decision: Read,
    options: CarryOptions,
    private readonly push: (chunk: Uint8Array) => boolean,
    private readonly done: () => void,
  ) {
    this.headDue = options.headDue
    this.clientLeft = options.clientLeft
    this.deferRecord = options.deferRecord === true
    // A hold released before the body ends (a held message_start) sends what it kept through here.
    exchange.connect({ write: (held) => this.forward(held), end: () => this.finished() })
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

  /** Bytes of the body as it came; `callback` once they are taken. Returns false when the reader is full. */
  write(chunk: Buffer, callback?: () => void): boolean {
    if (this.decoder) return this.decoder.write(chunk, callback)
    const ok = this.forward(this.exchange.push(chunk))
    callback?.()
    return ok
  }

  /** The body as it came ended. */
  end(): void {
    if (this.decoder) this.decoder.end()
    else this.finishBody()
  }

  /**
   * The carried body was destroyed. When the carrier can tell (`clientLeft`), a client that went away
   * is `abort` whatever destroyed the body (a compressor's pipeline says "Premature close"), and a body
   * destroyed without an error while the client is still there was dropped by the application (a
   * middleware mounted before usagewire sent another in its place): `cut`. Otherwise an error is the
   * gateway's cut, and no error the client's leaving.
   */
  destroyed(error: Error | null): void {
    this.decoder?.destroy()
    // Carried to its end already (a Readable destroys itself after its end): nothing was lost.
    if (this.completed) return
    const clientLeft = this.clientLeft
    this.clientLeft = undefined
    if (clientLeft?.()) this.exchange.finish({ kind: 'abort' })
    else if (error) this.exchange.finish({ kind: 'cut', reason: error.message })
    else if (clientLeft === undefined) this.exchange.finish({ kind: 'abort' })
    else this.exchange.finish({ kind: 'cut', reason: 'the body was dropped before it ended: another was sent instead' })
  }

  private forward(chunks: Uint8Array[]): boolean {
    let ok = true
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      if (this.headDue) this.announce(undefined)
      ok = this.push(chunk) && ok
    }
    return ok
  }

  private announce(length: number | undefined): void {
    const due = this.headDue
    this.headDue = undefined
    due?.(length)
  }

  private finishBody(): void {
    if (this.ended) return
    this.ended = true
    const { chunks, deferred } = this.exchange.end({
      write: (held) => this.forward(held),
      end: () => this.finished(),
    })
    // Read to its end with nothing sent yet: its length is known, unless a hold keeps part of it.
    if (this.headDue) this.announce(deferred ? undefined : chunks.reduce((sum, chunk) => sum + chunk.length, 0))
    this.forward(chunks)
    if (!deferred) this.finished()
  }

  private finished(): void {
    this.completed = true
    this.clientLeft = undefined
    this.done()
    if (!this.deferRecord) this.exchange.finish({ kind: 'end' })
  }
}

/**
 * A Node Transform that carries one Exchange's body: `upstream.pipe(new UsageTransform(exchange,
 * decision)).pipe(res)`, for a pipeline of the application's own. It decodes the content-encoding the
 * Exchange chose, rewrites usage, and finishes the Exchange into its record when the body ends (`end`),
 * is destroyed with an error (`cut`) or without one (`abort`).
 */
export class UsageTransform extends Transform {
  private readonly carry: BodyCarry
  private flushed: TransformCallback | undefined

  constructor(
    readonly exchange: Exchange,
    decision: Read,
    /** For a carrier that can still change the head when the body's first byte leaves (see {@link HeadDue}). */
    headDue?: HeadDue,
  ) {
    super()
    this.carry = new BodyCarry(
      exchange,
      decision,
      { headDue },
      (chunk) => this.push(chunk),
      () => {
        const callback = this.flushed
        this.flushed = undefined
        callback?.()
      },
    )
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.carry.write(chunk, () => callback())
  }

  override _flush(callback: TransformCallback): void {
    this.flushed = callback
    this.carry.end()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.carry.destroyed(error)
    callback(error)
  }
}

/**
 * The body {@link carryBody} hands a framework in place of a stream it was given: a Readable that reads
 * its source's `data` events itself, pausing the source while the framework's reader is full. Not a
 * Transform piped from the source, which adds a writable side and `pipe()`'s listeners: in the Fastify
 * gateway of bench row 4g that cost 9–19 µs more CPU per response (same run, alternating rounds; the Koa
 * gateway measured the same either way). Destroyed before its source ended, it destroys the source.
 */
export class CarriedBody extends Readable {
  private readonly carry: BodyCarry
  private paused = false
  // The one stream this body is piped to (Koa's and Fastify's `pipe(res)`, Koa 3's pipeline): its bytes
  // are written to it here, as `pipe()` would, without a pass through this stream's buffer, a `nextTick`
  // to read more and a `data` event per push (docs/architecture.md#the-exchange).
  private direct: NodeJS.WritableStream | undefined
  private drainWaits = false

  // Let go of once it ended: a framework may keep the carried body until long after (Koa's response
  // listeners), and the source reaches its socket, which goes on to carry later requests
  // (docs/architecture.md#the-exchange).
  private source: Readable | undefined

  constructor(source: Readable, exchange: Exchange, decision: Read, options: CarryOptions = {}) {
    super()
    this.carry = new BodyCarry(
      exchange,
      decision,
      options,
      (chunk) => this.send(chunk),
      () => this.push(null),
    )
    this.source = source
    // Plain listeners, not `once`: a `once` wraps each in a closure per body and removes it as it fires;
    // 'end' comes once and its listener goes with `detach`, and a second 'error' only destroys again.
    source.on('data', this.onData)
    source.on('end', this.onEnd)
    source.on('error', this.onError)
    // A source that ended or failed before it was handed over sends no more events: waiting for them
    // would leave the response open, and the record unwritten, for ever.
    if (source.readableEnded) this.onEnd()
    else if (source.destroyed || source.errored) {
      this.destroy(source.errored ?? new Error('the body stream was destroyed before it was sent'))
    }
  }

  private readonly onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (!this.carry.write(bytes) && !this.paused) {
      this.paused = true
      this.source?.pause()
    }
  }

  private readonly onEnd = (): void => {
    this.detach()
    this.carry.end()
  }

  private detach(): Readable | undefined {
    const source = this.source
    if (!source) return undefined
    this.source = undefined
    source.removeListener('data', this.onData)
    source.removeListener('end', this.onEnd)
    return source
  }

  private readonly onError = (error: Error): void => {
    this.destroy(error)
  }

  override _read(): void {
    if (!this.paused) return
    this.paused = false
    this.source?.resume()
  }

  /**
   * Piped to one stream, and read by nothing else: bytes go to it directly from then on, in order, as
   * long as nothing else reads them (a second pipe or `data` listener), nothing is buffered here, and the
   * body flows (not paused, not destroyed); otherwise they take the Readable's own way.
   */
  override pipe<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T {
    const first = this.listenerCount('data') === 0 && this.readableLength === 0
    const piped = super.pipe(dest, options)
    this.direct = first && this.listenerCount('data') === 1 ? dest : undefined
    return piped
  }

  override unpipe(dest?: NodeJS.WritableStream): this {
    if (dest === undefined || dest === this.direct) this.direct = undefined
    return super.unpipe(dest)
  }

  private send(chunk: Uint8Array): boolean {
    const dest = this.direct
    if (
      dest === undefined ||
      this.readableFlowing !== true ||
      this.readableLength !== 0 ||
      this.destroyed ||
      this.listenerCount('data') !== 1
    ) {
      return this.push(chunk)
    }
    if (dest.write(chunk)) return true
    // Full: the source pauses (onData), and resumes when the destination drains.
    if (!this.drainWaits) {
      this.drainWaits = true
      dest.once('drain', this.onDrain)
    }
    return false
  }

  private readonly onDrain = (): void => {
    this.drainWaits = false
    this._read()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const source = this.detach()
    // Its error listener stays: a source destroyed here may still emit an error (undici's body says
    // "Request aborted"), which must find a listener, not crash the process.
    if (source && !source.readableEnded && !source.destroyed) source.destroy()
    this.carry.destroyed(error)
    callback(error)
  }
}

import { Buffer } from 'node:buffer'
import { IncomingMessage, OutgoingMessage, ServerResponse, type OutgoingHttpHeaders } from 'node:http'
import { nextTick } from 'node:process'
import type { Transform } from 'node:stream'
import type { Exchange, HeadDecision, Port } from '../exchange.js'
import { isStreaming } from '../framing/index.js'
import { createMeter, type Meter } from '../meter.js'
import type { UsagewireOptions } from '../options.js'
import { createDecoder, narrowAcceptEncoding, NODE_DECODERS } from './decode.js'
import { outcomeOf } from './ended.js'

type Chunk = string | Uint8Array
type Callback = (error?: Error | null) => void
type Loose<R> = (...args: unknown[]) => R

/** Wraps `res` of an LLM request so its response leaves with complete, consistent usage. */
export interface Interceptor {
  /**
   * `url` is the request path as the client sent it (e.g. Express's `req.originalUrl`); `body` the parsed
   * request body when the framework has one. Returns the Exchange, or undefined, having touched nothing,
   * when the request is not an LLM request or another usagewire meters it already.
   */
  (req: IncomingMessage, res: ServerResponse, url?: string, body?: unknown): Exchange | undefined
  readonly meter: Meter
}

/**
 * Where the Exchange of a request is found (docs/architecture.md#intercepting-a-node-response). While
 * node:http's interception holds the response, and after it until the connection carries its next LLM
 * response, on the connection's socket ({@link CARRIER}, {@link Settled}); otherwise on the request,
 * under a registered symbol. Not in a WeakMap: a WeakMap
 * entry per request is an ephemeron the garbage collector must trace on every scavenge, measured at
 * about 20 µs of gateway CPU per request with 64 open (bench/README.md). Not on the request while the
 * socket can carry it: Express gives every request an object shape of its own (its
 * `Object.setPrototypeOf` leaves shapes V8 does not share), so each property added to one costs a new
 * shape, and every later read of the request, by the router and the proxy too, misses V8's caches
 * again. Both symbols are registered: the same in every copy of usagewire a process loads, so two
 * adapters never meter one request twice.
 */
const EXCHANGE = Symbol.for('usagewire.exchange')
type Carrying = IncomingMessage & { [EXCHANGE]?: Exchange }

const hasOwn = Object.hasOwn
const protoOf = Object.getPrototypeOf as (value: object) => Record<PropertyKey, unknown> | null

/**
 * node:http's own ways to read a response's headers, read once. A read of a method
 * off an Express response (`res.getHeader`) misses V8's caches, as every read of such a response does
 * (see writesThroughHooks), and usagewire is often the first to read that name off it: a runtime lookup
 * through its prototype chain, once per response. Called on `res` directly instead where the response
 * uses node's own (its prototype resolves to them), as every response the hooks hold does.
 */
const NODE_GET_HEADER = OutgoingMessage.prototype.getHeader
const NODE_HAS_HEADER = OutgoingMessage.prototype.hasHeader

/** The socket of an HTTP/1 response that has one (HTTP/2's compatibility `socket` is a proxy, shared). */
function socketOf(res: ServerResponse): CarrierSlot | null {
  return res instanceof ServerResponse ? ((res.socket as CarrierSlot | null) ?? null) : null
}

/**
 * The Exchange of an LLM request usagewire intercepts: code that runs while the request is served (a
 * handler that knows truer numbers, a tap on the gateway's own call to the provider) writes to its
 * ledger or holds its final usage event here.
 */
export function exchangeOf(req: IncomingMessage): Exchange | undefined {
  if (req instanceof IncomingMessage) {
    const held = (req.socket as CarrierSlot | null)?.[CARRIER]
    if (held !== undefined && held.req === req) return held.exchange
  }
  return (req as Carrying)[EXCHANGE]
}

/**
 * Makes `exchange` the one {@link exchangeOf} returns for `req`, for adapters that begin Exchanges with
 * their own meter (they need the {@link ResponseHandle} that `createInterceptor` keeps to itself). The
 * request is metered from here on, so its `Accept-Encoding` is narrowed to the codings usagewire reads
 * ({@link narrowAcceptEncoding}) before the gateway forwards it.
 */
export function attachExchange(req: IncomingMessage, exchange: Exchange): void {
  ;(req as Carrying)[EXCHANGE] = exchange
  narrowAcceptEncoding(req)
}

/**
 * The body a parser put on `req` (`express.json()`, body-parser, a connect middleware), or undefined. A
 * parser sets it as the request's own property; asked as such, a request without one is not looked up
 * through its whole prototype chain, which with Express's per-request shapes is a miss of V8's caches
 * on every request (docs/architecture.md#intercepting-a-node-response).
 */
export function parsedBody(req: IncomingMessage): unknown {
  return hasOwn(req, 'body') ? (req as { body?: unknown }).body : undefined
}

/** A Node interceptor for every response of a server or framework built on node:http. */
export function createInterceptor(options: UsagewireOptions | Meter = {}): Interceptor {
  const meter = 'begin' in options ? options : createMeter(options)
  const intercept = (req: IncomingMessage, res: ServerResponse, url = req.url ?? '/', body?: unknown) => {
    // Metered already, by a usagewire mounted before this one: one record per request. An interception
    // of a response that has its socket is on the socket; the request is read only where none can be.
    const socket = socketOf(res)
    const held = socket?.[CARRIER]
    if (held !== undefined && held.res === res) {
      if (held.exchange.done === false) return undefined
    } else if (socket === null && (req as Carrying)[EXCHANGE]?.done === false) return undefined
    const exchange = meter.begin({
      method: req.method ?? 'GET',
      url,
      body,
      headers: (name) => req.headers[name],
    })
    if (exchange) {
      narrowAcceptEncoding(req)
      new Interception(exchange, res, req, socket)
    }
    return exchange
  }
  return Object.assign(intercept, { meter })
}

/**
 * `compression()`'s `res.flush`, or null: an own property, or one of the prototype, whose shape is shared
 * (a read of `res` itself misses V8's caches for every Express response, see writesThroughHooks).
 */
function flushOf(res: ServerResponse): (() => void) | null {
  const flush = hasOwn(res, 'flush') ? (res as { flush?: unknown }).flush : protoOf(res)?.flush
  return typeof flush === 'function' ? (flush as () => void) : null
}

const toBuffer = (chunk: Chunk, encoding?: BufferEncoding): Buffer =>
  typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)

/** `writeHead(status, [reason], [headers])` moved onto `res`, so every decision reads one set of headers. */
function adoptHeadArgs(res: ServerResponse, args: unknown[]): string | undefined {
  const [status, second, third] = args
  const reason = typeof second === 'string' ? second : undefined
  const headers = (typeof second === 'string' ? third : second) as OutgoingHttpHeaders | unknown[] | undefined
  if (typeof status === 'number') res.statusCode = status
  if (Array.isArray(headers)) {
    // As node:http does with a raw header list: each name replaces what was set before, and repeats of
    // it (`Set-Cookie` and `set-cookie` both) are all kept, in order.
    const flat = Array.isArray(headers[0]) ? (headers as unknown[][]).flat() : headers
    for (let i = 0; i + 1 < flat.length; i += 2) res.removeHeader(String(flat[i]))
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = String(flat[i])
      if (!name) continue
      const value = flat[i + 1] as string | string[]
      const before = res.getHeader(name)
      if (before === undefined) res.setHeader(name, value)
      else res.setHeader(name, ([] as unknown[]).concat(before, value).map(String))
    }
  } else if (headers) {
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value)
  }
  return reason
}

/**
 * A streamed body whose Content-Length usagewire took off goes out chunked. node:http would chunk it
 * anyway, unless the writer had also removed Transfer-Encoding (http-proxy-middleware 4's
 * `responseInterceptor` does, as it sets the length itself): the body would then end with the
 * connection, and the client's keep-alive connection with it. Not for an HTTP/1.0 client, which
 * cannot read chunks (node:http tells by `useChunkedEncodingByDefault`).
 */
function keepFramed(res: ServerResponse): void {
  if (res.useChunkedEncodingByDefault && !res.hasHeader('transfer-encoding')) {
    res.setHeader('transfer-encoding', 'chunked')
  }
}

/** The hold an adapter keeps on an intercepted `res`. */
export interface ResponseHandle {
  /**
   * Gives `res` back untouched when nothing has been written to it yet, so the adapter can carry the
   * body another way (a Koa `ctx.body`, a Fastify `onSend` payload) with {@link carryBody}: its original
   * methods return and no record comes from `res`. Returns false, changing nothing, once a head or body
   * write has reached the interception (the raw writes of `ctx.respond = false` or `reply.hijack()`).
   */
  release(): boolean
}

/** The methods an interception takes over, as node:http defines them. */
interface Methods {
  writeHead: Loose<ServerResponse>
  write: Loose<boolean>
  end: Loose<ServerResponse>
  flushHeaders: () => void
  /** Absent from hooks an older copy of usagewire installed: its interceptions listen for 'close'. */
  emit?: Loose<boolean>
}

/** What the response hooks call on the interception that holds a response. */
interface Carrier {
  /** The request, where the Exchange is found through the socket rather than on the request. */
  readonly req?: IncomingMessage | undefined
  readonly res: ServerResponse
  readonly exchange: Exchange
  onWriteHead(args: unknown[]): ServerResponse
  onFlushHeaders(): void
  onWrite(chunk: Chunk, encoding: unknown, callback: unknown): boolean
  onEnd(chunk: unknown, encoding: unknown, callback: unknown): ServerResponse
  /** True when the interception hears of 'close' from the `emit` hook rather than from a listener. */
  readonly closesByEmit?: boolean
  /** The response emits 'finish' (`finished`), or 'close' without it; before its listeners hear of it. */
  closed?(finished: boolean): void
}

interface Hooks {
  readonly hooks: Methods
  readonly original: Methods
}

const HOOKS = Symbol.for('usagewire.responseHooks')

/**
 * The interception holding the response a connection is sending, on the connection's socket (a
 * registered symbol, the same in every copy of usagewire). A socket carries one response at a time,
 * and every socket of a server has the same shape, so the hooks' read of it is a monomorphic load.
 */
const CARRIER = Symbol.for('usagewire.carrier')
type CarrierSlot = { [CARRIER]?: Carrier | Settled | undefined }

/**
 * What a socket keeps of the last response an interception let go: its request and Exchange, so that
 * `exchangeOf(req)` still answers after the response (a 'close' listener, a logger), until the
 * connection carries its next LLM response or closes. Not the response: what a keep-alive connection
 * keeps between requests holds no more than the request (which node:http's parser keeps until the next
 * one anyway) and the finished Exchange. Not moved onto the request: with Express, a property added to a
 * request gives it a shape of its own, which V8 builds by copying its whole descriptor list (about
 * 13,000 instructions per response, bench/README.md row 8b).
 */
class Settled {
  /** No response: the hooks never find a settled exchange's carrier. */
  readonly res = undefined
  constructor(
    readonly req: IncomingMessage,
    readonly exchange: Exchange,
  ) {}
}

/**
 * The interception holding `res`; undefined for any other response. Found on its socket: reading the
 * Exchange off the request on every write was a megamorphic keyed load (a gateway's requests take
 * many shapes), about 1 µs of gateway CPU per write in an Express gateway streaming one event per write
 * (bench/README.md, row 4i). A Map keyed by the response did as well per write but cost the garbage
 * collector more per response than it saved. A response without a socket yet (a pipelined one), or
 * held by an older copy of usagewire, is found through its request.
 */
function carrierOf(res: ServerResponse): Carrier | undefined {
  const onSocket = (res.socket as CarrierSlot | null)?.[CARRIER]
  if (onSocket !== undefined && onSocket.res === res) {
    return onSocket.exchange?.carrier === onSocket ? (onSocket as Carrier) : undefined
  }
  const req = res.req as Carrying | undefined
  const carrier = req?.[EXCHANGE]?.carrier as Carrier | undefined
  return carrier !== undefined && carrier.res === res ? carrier : undefined
}

/**
 * node:http's response methods, taken over once on `ServerResponse.prototype` for every copy of
 * usagewire in the process (docs/architecture.md#intercepting-a-node-response). A response no
 * interception holds goes straight to node:http's own method, at the cost of two property reads. An
 * interception then takes a response over without a property of its own on `res`: four own methods
 * put on every response cost the gateway a map transition each, which V8 resolves in its runtime
 * (measured at about 70,000 instructions per response, bench/README.md).
 */
function responseHooks(): Hooks {
  const proto = ServerResponse.prototype as unknown as Methods & { [HOOKS]?: Hooks }
  const installed = proto[HOOKS]
  if (installed) return installed
  const original: Methods = {
    writeHead: proto.writeHead,
    write: proto.write,
    end: proto.end,
    flushHeaders: proto.flushHeaders,
    emit: proto.emit,
  }
  const emit = original.emit!
  const hooks: Methods = {
    writeHead(this: ServerResponse, ...args: unknown[]) {
      const carrier = carrierOf(this)
      return carrier ? carrier.onWriteHead(args) : original.writeHead.apply(this, args)
    },
    write(this: ServerResponse, chunk: unknown, encoding: unknown, callback: unknown) {
      const carrier = carrierOf(this)
      return carrier
        ? carrier.onWrite(chunk as Chunk, encoding, callback)
        : original.write.call(this, chunk, encoding, callback)
    },
    end(this: ServerResponse, chunk: unknown, encoding: unknown, callback: unknown) {
      const carrier = carrierOf(this)
      return carrier ? carrier.onEnd(chunk, encoding, callback) : original.end.call(this, chunk, encoding, callback)
    },
    flushHeaders(this: ServerResponse) {
      const carrier = carrierOf(this)
      return carrier ? carrier.onFlushHeaders() : original.flushHeaders.call(this)
    },
    // The end of a response is told to the interception as the response emits it, before its
    // listeners: a listener of its own on every response costs the gateway the listener list's changes
    // on an object whose shape V8 does not share (bench/README.md, row 8b). 'finish' while the response
    // still has its socket (node takes it off in a 'finish' listener), or 'close' alone, on a response cut
    // short. Every event passes on with its arguments as they were given.
    emit(this: ServerResponse, event: unknown, a?: unknown, b?: unknown) {
      if (event === 'finish' || event === 'close') {
        const carrier = carrierOf(this)
        if (carrier?.closesByEmit === true) carrier.closed!(event === 'finish')
      }
      const n = arguments.length
      if (n === 1) return emit.call(this, event)
      if (n === 2) return emit.call(this, event, a)
      if (n === 3) return emit.call(this, event, a, b)
      return emit.apply(this, arguments as unknown as unknown[])
    },
  }
  for (const name of ['writeHead', 'write', 'end', 'flushHeaders', 'emit'] as const) {
    Object.defineProperty(proto, name, { value: hooks[name], writable: true, configurable: true, enumerable: false })
  }
  const made: Hooks = { hooks, original }
  Object.defineProperty(proto, HOOKS, { value: made })
  return made
}

/** Connects `res` to `exchange`: the response is patched until its head shows whether it is ours. */
export function interceptResponse(exchange: Exchange, res: ServerResponse): ResponseHandle {
  return new Interception(exchange, res)
}

/**
 * True when `res` writes through node:http's methods, that is through the hooks: nothing put methods of
 * its own on it, and its prototype chain ends in the hooked ones. Read as own-property tests and reads
 * of the prototype, whose shape is shared, not as reads of `res` itself: with Express each response
 * has a shape of its own, and a read of it misses V8's caches (about 3,000 instructions each).
 */
function writesThroughHooks(res: ServerResponse, hooks: Methods): boolean {
  const proto = protoOf(res)
  return (
    proto !== null &&
    proto.write === hooks.write &&
    proto.end === hooks.end &&
    proto.writeHead === hooks.writeHead &&
    proto.flushHeaders === hooks.flushHeaders &&
    !hasOwn(res, 'write') &&
    !hasOwn(res, 'end') &&
    !hasOwn(res, 'writeHead') &&
    !hasOwn(res, 'flushHeaders')
  )
}

/** True when 'close' on `res` reaches the `emit` hook: the hooks have one, and nothing put its own on `res`. */
function emitsThroughHooks(res: ServerResponse, hooks: Methods): boolean {
  return hooks.emit !== undefined && protoOf(res)?.emit === hooks.emit && !hasOwn(res, 'emit')
}

/**
 * One intercepted response. Like `compression()`, it decides at the first write, from the headers,
 * whether the response is one to rewrite (the Exchange decides; this only carries it out); when it is
 * not, it puts the original methods back and gets out of the way. A class, not a bundle of closures: one
 * is made per LLM request.
 */
class Interception implements Port, ResponseHandle, Carrier {
  private decoder: Transform | undefined
  private decision: HeadDecision | undefined
  private holdHead = false // JSON and decoded bodies: the head waits for the new length and encoding
  private headArgs: [number, string | undefined] | undefined
  private headSent = false
  private sse = false
  private active = false
  private writerEnded = false // the writer called end()
  private finished = false // we ended the response
  private raw = false // from now on the body leaves exactly as the upstream encoded it
  private endCallback: Callback | undefined
  private released: Uint8Array[] | undefined // held bytes that leave with the end, once the length is known
  private flush: (() => void) | null | undefined // compression()'s res.flush, looked up once
  // Encoded input kept until the first decoded byte leaves, so a body that fails to decode can still
  // go out exactly as it came.
  private encodedHeld: Buffer[] | undefined
  private readonly originalWriteHead: Loose<ServerResponse>
  private readonly originalWrite: Loose<boolean>
  private readonly originalEnd: Loose<ServerResponse>
  private readonly flushHeaders: () => void
  /** Held through the prototype's hooks (no property of its own on `res`), not by own methods. */
  private readonly hooked: boolean
  /** `res` reads its headers with node's own methods: they are called directly, not read off `res`. */
  private readonly nodeHeaders: boolean
  /** 'close' comes through the `emit` hook; otherwise through {@link closeListener}. */
  readonly closesByEmit: boolean
  private closeListener: (() => void) | undefined
  private reported = false
  /** The socket the interception put itself on, to take itself off again once the response closed. */
  private socket: CarrierSlot | undefined
  /**
   * The request whose Exchange is found through the socket while the response is held (see
   * {@link EXCHANGE}); undefined where the request carries it.
   */
  req: IncomingMessage | undefined

  /**
   * `req` and `socket` come from `createInterceptor`, which puts the Exchange on the socket, or on the
   * request where the socket cannot carry it; without them the request carries it already
   * ({@link attachExchange}) or not at all.
   */
  constructor(
    readonly exchange: Exchange,
    readonly res: ServerResponse,
    req?: IncomingMessage,
    socket?: CarrierSlot | null,
  ) {
    const { hooks, original } = responseHooks()
    const own = req !== undefined
    if (!own) socket = socketOf(res)
    // The hooks hold a response only when nothing before usagewire put methods of its own on it (a
    // compression() mounted earlier must still see the body after usagewire) and the Exchange can be
    // found from the response (its socket, or its request); otherwise the response gets own methods,
    // which wrap whatever it had.
    this.hooked =
      writesThroughHooks(res, hooks) &&
      exchange.carrier === undefined &&
      (own || (res.req as Carrying | undefined)?.[EXCHANGE] === exchange)
    // The request carries the Exchange unless the socket does (a response not given its socket yet, as a
    // pipelined one, or own methods that the hooks never see).
    const viaSocket = own && this.hooked && socket != null
    if (own && !viaSocket) (req as Carrying)[EXCHANGE] = exchange
    this.req = viaSocket ? req : undefined
    if (socket) {
      // Also when not hooked: a second usagewire then sees the response is metered from its socket.
      socket[CARRIER] = this
      this.socket = socket
    }
    if (this.hooked) {
      this.originalWriteHead = original.writeHead
      this.originalWrite = original.write
      this.originalEnd = original.end
      this.flushHeaders = original.flushHeaders
      exchange.carrier = this
    } else {
      this.originalWriteHead = res.writeHead as Loose<ServerResponse>
      this.originalWrite = res.write as Loose<boolean>
      this.originalEnd = res.end as Loose<ServerResponse>
      this.flushHeaders = res.flushHeaders
      res.writeHead = ((...args: unknown[]) => this.onWriteHead(args)) as ServerResponse['writeHead']
      res.flushHeaders = () => this.onFlushHeaders()
      res.write = ((chunk: Chunk, encoding?: unknown, callback?: unknown) =>
        this.onWrite(chunk, encoding, callback)) as ServerResponse['write']
      res.end = ((chunk?: unknown, encoding?: unknown, callback?: unknown) =>
        this.onEnd(chunk, encoding, callback)) as ServerResponse['end']
    }
    // Read off its prototype, whose shape is shared. Only headers are read this way: a `getHeader` of the
    // response's own, if one were put on it, would be passed over for node's, which reads what is sent.
    const proto = this.hooked ? protoOf(res) : null
    this.nodeHeaders = proto !== null && proto.getHeader === NODE_GET_HEADER && proto.hasHeader === NODE_HAS_HEADER
    // 'close' follows 'finish' on a response that completed and comes alone on one cut short: it tells
    // both. A response the hooks hold tells it through the `emit` hook; another gets a listener, at the
    // cost of one closure ('close' comes once; `once` would add a wrapper and a bound function).
    this.closesByEmit = this.hooked && emitsThroughHooks(res, hooks)
    if (!this.closesByEmit) res.on('close', (this.closeListener = () => this.closed()))
  }

  release(): boolean {
    if (this.decision) return false
    if (this.hooked) this.detach()
    else this.restore()
    if (this.closeListener !== undefined) this.res.removeListener('close', this.closeListener)
    return true
  }

  /** Off the hooks: they find this interception no longer, and a 'close' through `emit` is not told. */
  private detach(): void {
    if (this.exchange.carrier === this) this.exchange.carrier = undefined
    this.letGo()
  }

  /**
   * The body is not read: the response goes on through node's methods. One held by the hooks stays
   * where they find it, as it hears of 'close' through them, and its hooks pass every call on (it is not
   * `active`); one given own methods gets its methods back.
   */
  private restore(): void {
    if (this.hooked) {
      if (!this.closesByEmit) this.detach()
      return
    }
    const res = this.res
    res.writeHead = this.originalWriteHead as ServerResponse['writeHead']
    res.write = this.originalWrite as ServerResponse['write']
    res.end = this.originalEnd as ServerResponse['end']
    res.flushHeaders = this.flushHeaders
  }

  /**
   * Asked on every write; the decision is made once, in a method of its own: a function that makes
   * closures allocates their context on each call, on entry, before any early return.
   */
  private decide(): void {
    if (this.decision === undefined) this.makeDecision()
  }

  private makeDecision(): void {
    const res = this.res
    const decision = (this.decision = this.exchange.respond(
      { status: res.statusCode, headers: (name) => this.header(name) },
      { decoders: NODE_DECODERS },
    ))
    if (!decision.read) return this.restore()
    this.active = true
    this.sse = isStreaming(decision.framing) // SSE, or a JSON array sent over time: both leave event by event
    if (decision.decode) {
      this.decoder = createDecoder(decision.decode)!
      this.encodedHeld = []
      this.wireDecoder(this.decoder)
    }
    this.holdHead = !this.sse || this.decoder !== undefined
    if (this.sse && this.header('content-length') !== undefined) {
      res.removeHeader('content-length')
      keepFramed(res)
    }
    // Node's own flags must stay true to what the writer did while the head or the end is held back.
    if (this.holdHead) {
      Object.defineProperty(res, 'headersSent', {
        configurable: true,
        get: () => this.headSent || this.headArgs !== undefined || res.writableEnded,
      })
    }
    if (this.decoder) {
      Object.defineProperty(res, 'writableEnded', { configurable: true, get: () => this.writerEnded || this.finished })
    }
    this.exchange.connect(this)
  }

  /** A header of the response as it stands (node's `getHeader`, called directly where it can be). */
  private header(name: string): ReturnType<ServerResponse['getHeader']> {
    return this.nodeHeaders ? NODE_GET_HEADER.call(this.res, name) : this.res.getHeader(name)
  }

  /** Whether the response has a header (node's `hasHeader`, called directly where it can be). */
  private hasHeader(name: string): boolean {
    return this.nodeHeaders ? NODE_HAS_HEADER.call(this.res, name) : this.res.hasHeader(name)
  }

  /** The head is due: written now, or held until the body's length and encoding are settled. */
  private headDue(): void {
    if (this.headSent) return
    this.headArgs ??= [this.res.statusCode, undefined]
    if (!this.holdHead) this.sendHead()
  }

  private sendHead(): void {
    if (!this.headArgs || this.headSent) return
    const [status, reason] = this.headArgs
    this.headArgs = undefined
    this.headSent = true
    if (reason === undefined) this.originalWriteHead.call(this.res, status)
    else this.originalWriteHead.call(this.res, status, reason)
  }

  /** The body leaves as the decoder produced it: the headers the Exchange named no longer hold. */
  private decodedHead(): void {
    if (!this.decision?.read) return
    const res = this.res
    const length = res.hasHeader('content-length')
    for (const name of this.decision.remove) res.removeHeader(name)
    if (length && this.sse) keepFramed(res)
  }

  /** Writes processor output to the client; returns what the socket said (of this write, or of the last one). */
  private emit(chunks: Uint8Array[]): boolean {
    const res = this.res
    let ok = true
    let wrote = false
    // Several pieces of one input chunk (a held event completed, the untouched rest) leave in one write.
    const cork = chunks.length > 1
    if (cork) res.cork()
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      if (this.headArgs) {
        if (this.decoder || this.hasHeader('transfer-encoding')) this.decodedHead()
        this.sendHead()
      }
      ok = this.originalWrite.call(res, chunk) && ok
      wrote = true
    }
    if (cork) res.uncork()
    // `compression()` buffers in its zlib window until flushed: SSE must leave per event (docs/transport.md).
    if (this.sse && chunks.length > 0) {
      // Looked up at the first write only: null (none) must not read as "not looked up yet", as it did
      // with `??=`, which looked again on every write.
      if (this.flush === undefined) this.flush = flushOf(res)
      if (this.flush !== null) this.flush.call(res)
    }
    return wrote ? ok : !res.writableNeedDrain
  }

  /**
   * Nothing has left yet and the decoded body could not be read: send the body exactly as the upstream
   * encoded it, from its first byte. Returns false when that is no longer possible.
   */
  private sendEncoded(reason: string): boolean {
    if (this.headSent || !this.encodedHeld) return false
    this.exchange.passthrough(reason)
    this.raw = true
    this.sendHead()
    for (const chunk of this.encodedHeld) this.originalWrite.call(this.res, chunk)
    this.encodedHeld = undefined
    if (this.writerEnded) {
      this.finished = true
      this.originalEnd.call(this.res, this.endCallback)
    }
    return true
  }

  private finish(callback?: Callback): void {
    if (this.finished) return
    const { chunks, deferred } = this.exchange.end()
    if (deferred) {
      // A hold keeps the final usage event: what came before it leaves now, the rest with the release.
      this.endCallback = callback
      this.emit(chunks)
      return
    }
    this.complete(chunks, callback)
  }

  /** Port: bytes a hold kept leave now; with the head still held and the body ended, with the end. */
  write(chunks: Uint8Array[]): void {
    if (this.writerEnded && this.headArgs) (this.released ??= []).push(...chunks)
    else this.emit(chunks)
  }

  /** Port: the end a hold deferred is due. */
  end(): void {
    const released = this.released ?? []
    this.released = undefined
    this.complete(released, this.endCallback)
  }

  private complete(rest: Uint8Array[], callback?: Callback): void {
    if (this.finished) return
    const res = this.res
    const failed = this.exchange.failure
    if (this.decoder && failed && this.sendEncoded(failed.reason)) return
    this.finished = true
    if (this.headArgs) {
      const length = rest.reduce((n, c) => n + c.length, 0)
      this.decodedHead()
      if (!res.hasHeader('transfer-encoding')) res.setHeader('content-length', length)
      if (this.exchange.rewrote) res.removeHeader('etag') // not the body it tagged
      this.sendHead()
    }
    this.emit(rest)
    this.originalEnd.call(res, callback)
  }

  private wireDecoder(stream: Transform): void {
    const res = this.res
    // One 'drain' listener for the response's life, added when first needed, not one per full write:
    // compression() hands `res.on('drain')` to its own stream but not `removeListener`, so a `once`
    // per write would stay there for good, one more each time the client is slow.
    let resumeOnDrain: (() => void) | undefined
    stream.on('data', (data: Buffer) => {
      if (this.finished || this.raw) return
      if (!this.emit(this.exchange.push(data))) {
        stream.pause()
        if (!resumeOnDrain) res.on('drain', (resumeOnDrain = () => stream.resume()))
      }
    })
    // The decoder's own buffer filling up is what `write()` reported; tell the writer when it empties.
    stream.on('drain', () => res.emit('drain'))
    stream.on('error', (error: Error) => {
      if (this.finished || this.raw) return
      const reason = `content-encoding ${this.decision?.read ? this.decision.decode : ''}: ${error.message}`
      if (this.sendEncoded(reason)) return
      // Decoded bytes already left: end with what was decoded; the upstream's body was broken anyway.
      this.emit(this.exchange.passthrough(reason))
      this.finish(this.endCallback)
    })
    stream.on('end', () => this.finish(this.endCallback))
  }

  onWriteHead(args: unknown[]): ServerResponse {
    const res = this.res
    // Decided not to read, and still held by the hooks (for 'close'): node's own, as it was called.
    if (this.decision !== undefined && !this.active) return this.originalWriteHead.apply(res, args)
    const reason = adoptHeadArgs(res, args)
    this.decide()
    if (!this.active) return this.originalWriteHead.call(res, res.statusCode, ...(reason ? [reason] : []))
    if (!this.headSent) this.headArgs = [res.statusCode, reason]
    this.headDue()
    return res
  }

  onFlushHeaders(): void {
    this.decide()
    if (!this.active) return this.flushHeaders.call(this.res)
    if (!this.holdHead) {
      this.headDue()
      this.flushHeaders.call(this.res)
    }
  }

  onWrite(chunk: Chunk, encoding: unknown, callback: unknown): boolean {
    this.decide()
    const res = this.res
    if (!this.active || this.raw) return this.originalWrite.call(res, chunk, encoding, callback)
    const cb = (typeof encoding === 'function' ? encoding : callback) as Callback | undefined
    if (this.writerEnded || this.finished) {
      // Node's answer to a write after end: an error to the callback and the 'error' event, not a crash here.
      const error = Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' })
      if (cb) nextTick(cb, error)
      return false
    }
    this.headDue()
    const data = toBuffer(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined)
    if (this.decoder) {
      if (this.encodedHeld && !this.headSent) this.encodedHeld.push(data)
      else this.encodedHeld = undefined
      return this.decoder.write(data, cb)
    }
    const ok = this.emit(this.exchange.push(data))
    if (cb) nextTick(cb)
    return ok
  }

  onEnd(chunk: unknown, encoding: unknown, callback: unknown): ServerResponse {
    this.decide()
    const res = this.res
    if (!this.active || this.raw) return this.originalEnd.call(res, chunk, encoding, callback)
    if (typeof chunk === 'function') [chunk, callback] = [undefined, chunk]
    if (typeof encoding === 'function') [encoding, callback] = [undefined, encoding]
    if (this.writerEnded || this.finished) {
      // A second end() is a no-op, as Node's own is: it must not cut the body still being decoded.
      if (typeof callback === 'function') res.once('finish', () => (callback as Callback)())
      return res
    }
    this.headDue()
    const data = chunk == null ? undefined : toBuffer(chunk as Chunk, encoding as BufferEncoding | undefined)
    this.writerEnded = true
    if (this.decoder) {
      this.endCallback = callback as Callback | undefined
      if (data && this.encodedHeld && !this.headSent) this.encodedHeld.push(data)
      this.decoder.end(data)
      return res
    }
    if (data) this.emit(this.exchange.push(data))
    this.finish(callback as Callback | undefined)
    return res
  }

  /**
   * Off its socket, unless the socket went on to a later response since. An Exchange found through the
   * socket stays there, without the response ({@link Settled}), for exchangeOf(req) from then on; where
   * the socket went on already, its request carries it.
   */
  private letGo(): void {
    const socket = this.socket
    this.socket = undefined
    const req = this.req
    this.req = undefined
    if (socket?.[CARRIER] === this) socket[CARRIER] = req !== undefined ? new Settled(req, this.exchange) : undefined
    else if (req !== undefined) (req as Carrying)[EXCHANGE] = this.exchange
  }

  /** Carrier: the response finished (`finished`) or closed; its record is made, once. */
  closed(finished = false): void {
    if (this.reported) return
    this.reported = true
    const res = this.res
    this.letGo()
    // The flags go back to Node's own once the response is over (only those put on it: a `delete` costs
    // a lookup even of a property that is not there).
    if (this.holdHead) delete (res as { headersSent?: boolean }).headersSent
    if (this.decoder) delete (res as { writableEnded?: boolean }).writableEnded
    // Ended, cut by the gateway, or left by the client: read from the response (`res.errored`, or its
    // HTTP/2 stream), so `destroy` need not be patched: every method patched on `res` costs the gateway
    // on every request.
    this.exchange.finish(outcomeOf(res, finished))
  }
}

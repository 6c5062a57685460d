import { AsyncLocalStorage } from 'node:async_hooks'
import diagnostics from 'node:diagnostics_channel'
import type { ClientRequest, IncomingMessage } from 'node:http'
import type { Exchange } from '../exchange.js'
import type { UpstreamTap } from '../tap.js'
import { createDecoder, NODE_DECODERS } from './decode.js'

/**
 * The upstream tap's Node transports (docs/truth-sources.md#the-upstream-tap): the gateway's own calls
 * to the provider, made while it serves a request usagewire intercepts, are read for that request's
 * Exchange. A call is tied to its request by AsyncLocalStorage: the adapters run the rest of the
 * request's handling inside its Exchange, so the gateway's code changes in nothing.
 *
 * Nothing here runs until a tap is installed: AsyncLocalStorage costs every promise of the process
 * once it is in use, so a gateway that does not translate never pays for it.
 */

export interface TapOptions {
  /**
   * The longest the client-facing final usage event waits for the provider's usage, in ms, once the
   * gateway called the provider. Default 1000.
   */
  maxWaitMs?: number
}

const context = new AsyncLocalStorage<Exchange>()
let installs = 0
/** A fetch was tapped with {@link tapFetch}: requests run inside their Exchange from then on. */
let fetchTapped = false
let maxWaitMs: number | undefined

/**
 * Runs `fn` (the rest of the request's handling: Express's `next`, Koa's `next()`, Fastify's hook `done`)
 * inside `exchange`, so the calls it makes to a provider are read for it. Without an installed tap it
 * only calls `fn`.
 */
export function runInExchange<T>(exchange: Exchange, fn: () => T): T {
  return installs > 0 || fetchTapped ? context.run(exchange, fn) : fn()
}

/** The Exchange of the request being served here, when a tap is installed. */
export function currentExchange(): Exchange | undefined {
  return installs > 0 || fetchTapped ? context.getStore() : undefined
}

/** True while a tap is installed in this process. */
export function tapInstalled(): boolean {
  return installs > 0
}

type Headers = (name: string) => string | string[] | undefined

/** Where a body's decoded bytes go: an {@link UpstreamTap}, or any reader with the same three calls. */
export interface BodySink {
  push(chunk: Uint8Array): void
  end(): void
  fail(): void
}

/**
 * A {@link BodyObserver} that hands `sink` the body's bytes, decoded first when `decode` names a content
 * encoding (a Node decoder's output is asynchronous: the sink's end follows the decoder's).
 */
export function decodingObserver(sink: BodySink, decode: string | undefined): BodyObserver {
  const decoder = decode ? createDecoder(decode) : undefined
  if (!decoder) return { data: (chunk) => sink.push(chunk), end: () => sink.end(), fail: () => sink.fail() }
  decoder.on('data', (data: Buffer) => sink.push(data))
  decoder.on('end', () => sink.end())
  decoder.on('error', () => sink.fail())
  return {
    data: (chunk) => void decoder.write(chunk),
    end: () => void decoder.end(),
    fail: () => {
      decoder.destroy()
      sink.fail()
    },
  }
}

function open(tap: UpstreamTap, status: number, headers: Headers): BodyObserver | undefined {
  const head = tap.head(status, headers, NODE_DECODERS)
  return head.read ? decodingObserver(tap, head.decode) : undefined
}

// ---- node:http and https client requests (the AWS SDK's NodeHttpHandler, http-proxy, axios, got) -----

const TAPPED = Symbol.for('usagewire.tapped')

/**
 * Reads the response to `request` for `exchange`. The body is seen as the socket hands it to the
 * response, before any consumer reads it, so nothing about how the gateway reads it changes.
 */
export function tapClientRequest(exchange: Exchange, request: ClientRequest): void {
  const marked = request as ClientRequest & { [TAPPED]?: true }
  if (marked[TAPPED]) return
  marked[TAPPED] = true
  const tap = exchange.openTap(request.path, maxWaitMs)
  if (!tap) return
  request.once('error', () => tap.fail())
  request.once('close', () => {
    if (!answered) tap.fail()
  })
  let answered = false
  request.once('response', (res: IncomingMessage) => {
    answered = true
    const feed = open(tap, res.statusCode ?? 0, (name) => res.headers[name])
    if (feed) observeIncoming(res, feed)
  })
}

/** What {@link observeIncoming} hands a body's bytes to. */
export interface BodyObserver {
  data(chunk: Uint8Array): void
  /** The body ended whole. */
  end(): void
  /** The body was cut (the socket closed before its end). */
  fail(): void
}

/**
 * Sees the body of an `IncomingMessage` (a client response, a proxied upstream response) as the socket
 * hands it over, before any consumer reads it: nothing about how the body is read, piped or paused
 * changes, and no data listener switches it into flowing mode.
 */
export function observeIncoming(res: IncomingMessage, observer: BodyObserver): void {
  const push = res.push
  let ended = false
  res.push = function observedPush(this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (!ended) {
      try {
        if (chunk === null) {
          ended = true
          observer.end()
        } else if (chunk instanceof Uint8Array) {
          observer.data(chunk)
        }
      } catch {
        // An observer never fails the body.
      }
    }
    return push.call(this, chunk, encoding)
  }
  res.once('close', () => {
    if (ended) return
    ended = true
    try {
      observer.fail()
    } catch {
      // An observer never fails the body.
    }
  })
}

function onClientRequest(message: unknown): void {
  const exchange = context.getStore()
  if (!exchange) return
  try {
    tapClientRequest(exchange, (message as { request: ClientRequest }).request)
  } catch {
    // The tap never fails the gateway's call.
  }
}

// ---- undici: global fetch and undici's own dispatchers --------------------------------------------

/** An undici dispatch handler, in either of its APIs (undici 5–6 `onHeaders`…, undici 7 `onResponseStart`…). */
type Handler = Record<string, unknown>
type Dispatch = (options: { path: string; method?: string }, handler: Handler) => boolean

const HANDLER_METHODS = [
  'onConnect',
  'onHeaders',
  'onData',
  'onComplete',
  'onError',
  'onUpgrade',
  'onBodySent',
  'onRequestSent',
  'onResponseStarted',
  'onRequestStart',
  'onRequestUpgrade',
  'onResponseStart',
  'onResponseData',
  'onResponseEnd',
  'onResponseError',
] as const

/** The undici 7 methods whose first argument is the request's controller. */
const CONTROLLED: ReadonlySet<string> = new Set([
  'onRequestStart',
  'onRequestUpgrade',
  'onResponseStart',
  'onResponseData',
  'onResponseEnd',
  'onResponseError',
])

/** `name` in undici's raw headers: a flat list of names and values, as Buffers or strings. */
function rawHeader(raw: unknown): Headers {
  return (name) => {
    if (!Array.isArray(raw)) return undefined
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (String(raw[i]).toLowerCase() === name) return String(raw[i + 1])
    }
    return undefined
  }
}

function headerRecord(headers: unknown): Headers {
  return (name) => {
    if (!headers || typeof headers !== 'object') return undefined
    const value = (headers as Record<string, unknown>)[name]
    return value === undefined ? undefined : Array.isArray(value) ? value.map(String) : String(value)
  }
}

/**
 * The handler undici calls, wrapped: every method the original has is forwarded as it is, and the
 * response's head, data and end are also read by the tap. The wrapper has exactly the original's
 * methods, so undici sees the same API.
 */
function wrapHandler(handler: Handler, tap: UpstreamTap, exchange: Exchange): Handler {
  const drain = exchange.drainsOnAbort
  let feed: BodyObserver | undefined
  let over = false
  // onAbort 'drain': the caller gave up (its client left); it is told so at once, and the response is
  // read on for the tap alone, to its end.
  let detached = false
  // Only an abort because the client left is a drain (the Exchange is draining by then: the response's
  // close reached usagewire before the gateway's own listener). The gateway's own abort (a timeout before
  // a retry) is carried out.
  const detach = (reason: unknown, abort: (reason: unknown) => void): void => {
    if (!exchange.isDraining) return abort(reason)
    if (detached) return
    detached = true
    exchange.whenFinished(() => {
      // The drain ended at maxDrainMs, the provider's final usage not read: its call is let go of. One
      // that gave its final usage is read on to its end, as it would have been.
      if (!over && !tap.final) abort(reason)
    })
    const error = reason instanceof Error ? reason : Object.assign(new Error('aborted'), { name: 'AbortError' })
    const onError = (handler.onResponseError ?? handler.onError) as ((...a: unknown[]) => unknown) | undefined
    if (typeof handler.onResponseError === 'function') onError?.call(handler, controllerOf, error)
    else onError?.call(handler, error)
  }
  let controllerOf: unknown
  /** undici 7's controller, with `abort` detaching instead while draining. */
  const drained = (controller: unknown): unknown => {
    if (!drain || !controller || typeof controller !== 'object') return controller
    controllerOf ??= new Proxy(controller, {
      get(target, key) {
        if (key === 'abort')
          return (reason: unknown) => detach(reason, (why) => (target as { abort(r: unknown): void }).abort(why))
        if (key === 'aborted') return detached || Reflect.get(target, key, target)
        const value = Reflect.get(target, key, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    return controllerOf
  }
  const finish = (ok: boolean): void => {
    if (over) return
    over = true
    if (!feed) tap.fail()
    else if (ok) feed.end()
    else feed.fail()
  }
  const wrapped: Handler = {}
  for (const name of HANDLER_METHODS) {
    const method = handler[name]
    if (typeof method !== 'function') continue
    wrapped[name] = (...args: unknown[]) => {
      if (drain) {
        // The caller's abort function (undici 5–6) and controller (undici 7) detach while draining.
        if (name === 'onConnect') {
          const abort = args[0] as (reason?: unknown) => void
          args[0] = (reason?: unknown) => (over ? abort(reason) : detach(reason, abort))
        } else if (CONTROLLED.has(name)) {
          args[0] = drained(args[0])
        }
      }
      try {
        switch (name) {
          case 'onHeaders':
            feed = open(tap, args[0] as number, rawHeader(args[1]))
            break
          case 'onResponseStart':
            feed = open(tap, args[1] as number, headerRecord(args[2]))
            break
          case 'onData':
            if (!over) feed?.data(args[0] as Uint8Array)
            break
          case 'onResponseData':
            if (!over) feed?.data(args[1] as Uint8Array)
            break
          case 'onComplete':
          case 'onResponseEnd':
            finish(true)
            break
          case 'onError':
          case 'onResponseError':
            finish(false)
            break
        }
      } catch {
        // The tap never fails the gateway's call.
      }
      // Detached: the caller heard its abort; the rest is the tap's alone (and data keeps flowing).
      if (detached) return name === 'onData' || name === 'onHeaders' ? true : undefined
      return (method as (...a: unknown[]) => unknown).apply(handler, args)
    }
  }
  return wrapped
}

function tapDispatch(dispatch: Dispatch): Dispatch {
  return (options, handler) => {
    const exchange = context.getStore()
    if (!exchange) return dispatch(options, handler)
    let tap: UpstreamTap | undefined
    try {
      tap = exchange.openTap(String(options.path ?? ''), maxWaitMs)
    } catch {
      tap = undefined
    }
    return dispatch(options, tap ? wrapHandler(handler, tap, exchange) : handler)
  }
}

/**
 * An undici interceptor, for a dispatcher of your own:
 * `setGlobalDispatcher(new Agent().compose(upstreamInterceptor()))`, or `agent.compose(…)` for the
 * Agent a client uses. `tapUpstream()` installs one on the global dispatcher for you.
 */
export function upstreamInterceptor(): (dispatch: Dispatch) => Dispatch {
  return tapDispatch
}

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1')
type Dispatcher = { dispatch: Dispatch }
type Global = typeof globalThis & { [GLOBAL_DISPATCHER]?: Dispatcher }

/** The global dispatcher with its `dispatch` tapped; every other member is the original's. */
function tappedDispatcher(inner: Dispatcher): Dispatcher {
  const dispatch = tapDispatch((options, handler) => inner.dispatch(options, handler))
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'dispatch') return dispatch
      if (key === TAPPED) return target
      const value = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

// ---- fetch functions of your own ------------------------------------------------------------------

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/**
 * A `fetch` whose calls to a provider are read for the request being served: for a fetch that is not
 * undici's (a polyfill, a bundled client's own). The response it returns has the same status, headers
 * and body; its body is read as the caller reads it.
 */
export function tapFetch<F extends Fetch>(fetchImpl: F): F {
  fetchTapped = true
  const tapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const exchange = context.getStore()
    if (!exchange) return fetchImpl(input, init)
    let tap: UpstreamTap | undefined
    try {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
      tap = exchange.openTap(new URL(url, 'http://localhost').pathname, maxWaitMs)
    } catch {
      tap = undefined
    }
    if (!tap) return fetchImpl(input, init)
    let response: Response
    try {
      response = await fetchImpl(input, init)
    } catch (error) {
      tap.fail()
      throw error
    }
    const t = tap
    // A fetch has decoded the body already; its Content-Encoding header still names the coding.
    const head = t.head(
      response.status,
      (name) => (name === 'content-encoding' ? undefined : (response.headers.get(name) ?? undefined)),
      [],
    )
    if (!head.read || response.body === null) {
      t.fail()
      return response
    }
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) {
          t.push(chunk)
          controller.enqueue(chunk)
        },
        flush() {
          t.end()
        },
        // The gateway cancelled the body (its client left, it gave up): nothing more will come.
        cancel() {
          t.fail()
        },
      } as ConstructorParameters<typeof TransformStream<Uint8Array, Uint8Array>>[0] & { cancel(): void }),
    )
    const copy = new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    })
    for (const key of ['url', 'redirected', 'type'] as const) {
      Object.defineProperty(copy, key, { value: response[key], enumerable: true })
    }
    return copy
  }
  return tapped as F
}

// ---- installing ---------------------------------------------------------------------------------

/** What {@link tapUpstream} returns. */
export interface InstalledTap {
  /** Uninstalls this installation (the tap stays while another one is installed). */
  close(): void
}

/**
 * Installs the upstream tap for this process, in one line at start-up:
 *
 *   tapUpstream()
 *
 * Every call the gateway then makes to an LLM provider with global `fetch`, undici or node:http while
 * serving a request that usagewire intercepts is read for that request: its usage enters the request's
 * ledger as the most trusted source, and the client-facing stream carries the provider's numbers
 * (docs/truth-sources.md). Call it after setting a global dispatcher of your own (a proxy agent), or
 * compose {@link upstreamInterceptor} into yours.
 */
export function tapUpstream(options: TapOptions = {}): InstalledTap {
  if (options.maxWaitMs !== undefined && !(Number.isFinite(options.maxWaitMs) && options.maxWaitMs >= 0)) {
    throw new TypeError('usagewire: maxWaitMs must be a number of milliseconds, 0 or more')
  }
  maxWaitMs = options.maxWaitMs ?? maxWaitMs
  if (installs++ === 0) {
    diagnostics.subscribe('http.client.request.start', onClientRequest)
    // Reading `Headers` loads Node's undici, which sets the global dispatcher if nothing has yet.
    void globalThis.Headers
    const g = globalThis as Global
    const inner = g[GLOBAL_DISPATCHER]
    if (inner && !(inner as unknown as Record<symbol, unknown>)[TAPPED]) g[GLOBAL_DISPATCHER] = tappedDispatcher(inner)
  }
  let closed = false
  return {
    close() {
      if (closed) return
      closed = true
      if (--installs > 0) return
      diagnostics.unsubscribe('http.client.request.start', onClientRequest)
      const g = globalThis as Global
      const current = g[GLOBAL_DISPATCHER] as unknown as Record<symbol, Dispatcher | undefined> | undefined
      const inner = current?.[TAPPED]
      if (inner) g[GLOBAL_DISPATCHER] = inner
      maxWaitMs = undefined
    },
  }
}

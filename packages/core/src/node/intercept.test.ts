import { EventEmitter } from 'node:events'
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import type { UsageRecord } from '../record.js'
import type { RouteRule } from '../routes.js'
import { createInterceptor, exchangeOf } from './intercept.js'
import { chatBody } from './test-bodies.js'
import { collected } from './test-gc.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

const servers: Array<{ close(): void }> = []
afterEach(() => servers.splice(0).forEach((s) => s.close()))

/** A server whose handler writes the response itself, with the interceptor wrapped around it. */
async function serve(handler: Handler) {
  const records: UsageRecord[] = []
  const intercept = createInterceptor({ onUsage: (r) => records.push(r) })
  const server = createServer((req, res) => {
    intercept(req, res)
    handler(req, res)
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  servers.push(server)
  const { port } = server.address() as AddressInfo
  return { port, records }
}

/** The raw response: headers and undecoded body bytes. */
function fetchRaw(port: number, path: string) {
  return new Promise<{ headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST' }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

const waitFor = async <T>(get: () => T | undefined): Promise<T> => {
  for (let i = 0; i < 200; i++) {
    const value = get()
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error('timed out')
}

describe('the Node response interceptor', () => {
  it('sets Content-Length to the rewritten body and drops the stale ETag', async () => {
    const { port, records } = await serve((_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('content-length', Buffer.byteLength(chatBody))
      res.setHeader('etag', '"abc"')
      res.end(chatBody)
    })
    const { headers, body } = await fetchRaw(port, '/v1/chat/completions')
    expect(Number(headers['content-length'])).toBe(body.length)
    expect(body.length).toBeGreaterThan(Buffer.byteLength(chatBody))
    expect(headers.etag).toBeUndefined()
    expect(JSON.parse(body.toString()).usage).toMatchObject({
      prompt_tokens: 1000,
      total_tokens: 1010,
      prompt_tokens_details: { cached_tokens: 800 },
    })
    const record = await waitFor(() => records[0])
    expect(record.usage).toMatchObject({ input: 200, cacheRead: 800, output: 10 })
  })

  it('a body that fails to decode leaves exactly as the upstream encoded it, and the record says why', async () => {
    const broken = Buffer.concat([gzipSync(chatBody).subarray(0, 20), Buffer.from('not gzip at all')])
    const { port, records } = await serve((_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': broken.length,
      })
      res.write(broken.subarray(0, 10))
      res.end(broken.subarray(10))
    })
    const { headers, body } = await fetchRaw(port, '/v1/chat/completions')
    expect(headers['content-encoding']).toBe('gzip')
    expect(body.equals(broken)).toBe(true)
    const record = await waitFor(() => records[0])
    expect(record.status).toBe('passthrough')
    // zlib may report the corrupt tail as an error or end early on it; either way the body is unreadable
    expect(record.passthrough?.reason).toMatch(/content-encoding gzip|malformed JSON body/)
  })

  it('leaves a response on another path completely alone', async () => {
    const { port, records } = await serve((_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(chatBody)
    })
    const { body } = await fetchRaw(port, '/health')
    expect(body.toString()).toBe(chatBody)
    await new Promise((r) => setTimeout(r, 20))
    expect(records).toHaveLength(0)
  })

  it('writeHead headers given as an object or a flat array are read like setHeader ones', async () => {
    const { port } = await serve((_req, res) => {
      res.writeHead(200, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(chatBody))])
      res.end(chatBody)
    })
    const { headers, body } = await fetchRaw(port, '/v1/chat/completions')
    expect(Number(headers['content-length'])).toBe(body.length)
    expect(JSON.parse(body.toString()).usage.prompt_tokens).toBe(1000)
  })

  it('keeps every header of a raw header list, repeats that differ only in case included, as node:http does', async () => {
    const { port } = await serve((_req, res) => {
      res.setHeader('x-before', 'replaced')
      res.writeHead(200, [
        ['Content-Type', 'application/json'],
        ['Set-Cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['Link', '<x>'],
        ['link', '<y>'],
        ['X-Before', 'kept'],
      ])
      res.end(chatBody)
    })
    const { headers, body } = await fetchRaw(port, '/v1/chat/completions')
    expect(headers['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(headers['link']).toBe('<x>, <y>')
    expect(headers['x-before']).toBe('kept')
    expect(JSON.parse(body.toString()).usage.prompt_tokens).toBe(1000)
  })

  it('sends a streamed body it took the length off chunked, though the writer removed Transfer-Encoding: the connection stays open', async () => {
    const stream =
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":5}}\n\n' +
      'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    // As http-proxy-middleware 4's responseInterceptor answers: the whole body, its length, no Transfer-Encoding.
    const { port, records } = await serve((_req, res) => {
      res.setHeader('content-type', 'text/event-stream')
      res.removeHeader('transfer-encoding')
      res.setHeader('content-length', Buffer.byteLength(stream))
      res.write(stream)
      res.end()
    })
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const sockets = new Set<unknown>()
    const one = () =>
      new Promise<{ headers: IncomingMessage['headers']; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', agent }, (res) => {
          sockets.add(res.socket)
          let body = ''
          res.on('data', (c: Buffer) => (body += c.toString()))
          res.on('end', () => resolve({ headers: res.headers, body }))
        })
        req.on('error', reject)
        req.end()
      })
    const first = await one()
    const second = await one()
    agent.destroy()
    expect(first.headers['transfer-encoding']).toBe('chunked')
    expect(first.headers['connection']).toBe('keep-alive')
    expect(first.body).toContain('"input_tokens":10,"output_tokens":5')
    expect(second.body).toBe(first.body)
    expect(sockets.size).toBe(1)
    await waitFor(() => records[1])
    expect(records.map((r) => r.status)).toEqual(['complete', 'complete'])
  })

  /**
   * Two interceptors on every request, the first after `before(res)`: what each recorded, and whether
   * exchangeOf(req) found the first one's Exchange.
   */
  async function twice(before: (res: ServerResponse) => void = () => {}) {
    const outer: UsageRecord[] = []
    const inner: UsageRecord[] = []
    const first = createInterceptor({ onUsage: (r) => void outer.push(r) })
    const second = createInterceptor({ onUsage: (r) => void inner.push(r) })
    const found: boolean[] = []
    const server = createServer((req, res) => {
      before(res)
      const exchange = first(req, res)
      expect(exchange).toBeDefined()
      expect(second(req, res)).toBeUndefined()
      found.push(exchangeOf(req) === exchange)
      res.setHeader('content-type', 'application/json')
      res.end(chatBody)
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    const { body } = await fetchRaw((server.address() as AddressInfo).port, '/v1/chat/completions')
    expect(JSON.parse(body.toString()).usage.prompt_tokens).toBe(1000)
    await waitFor(() => outer[0])
    await new Promise((r) => setTimeout(r, 20))
    return { outer, inner, found }
  }

  it('meters a request once when two interceptors wrap it (usagewire mounted twice)', async () => {
    const { outer, inner, found } = await twice()
    expect(found).toEqual([true])
    expect(outer).toHaveLength(1)
    expect(inner).toHaveLength(0)
  })

  it('meters a request once, and exchangeOf finds it, when the first interception took the response with own methods', async () => {
    // compression() mounted before usagewire wraps res.write: the first interceptor then puts own methods
    // on res, and the second must still see the response metered, from its socket.
    const { outer, inner, found } = await twice((res) => {
      const write = res.write
      res.write = function (this: ServerResponse, ...args: unknown[]) {
        return (write as (...a: unknown[]) => boolean).apply(this, args)
      } as ServerResponse['write']
    })
    expect(found).toEqual([true])
    expect(outer).toHaveLength(1)
    expect(inner).toHaveLength(0)
  })

  it('meters a request object again once its earlier Exchange is over (a mock reused for every response)', () => {
    const records: UsageRecord[] = []
    const intercept = createInterceptor({ onUsage: (r) => void records.push(r) })
    const req = { url: '/v1/chat/completions', method: 'POST', headers: {} } as IncomingMessage
    const respond = () => {
      const res = Object.assign(new EventEmitter(), {
        statusCode: 200,
        headers: new Map<string, unknown>([['content-type', 'application/json']]),
        writableFinished: false,
        getHeader(this: { headers: Map<string, unknown> }, name: string) {
          return this.headers.get(name.toLowerCase())
        },
        setHeader(this: { headers: Map<string, unknown> }, name: string, value: unknown) {
          this.headers.set(name.toLowerCase(), value)
        },
        hasHeader(this: { headers: Map<string, unknown> }, name: string) {
          return this.headers.has(name.toLowerCase())
        },
        removeHeader(this: { headers: Map<string, unknown> }, name: string) {
          this.headers.delete(name.toLowerCase())
        },
        writeHead() {},
        flushHeaders() {},
        write: () => true,
        end(this: EventEmitter & { writableFinished: boolean }) {
          this.writableFinished = true
          this.emit('finish')
          this.emit('close')
        },
      }) as unknown as ServerResponse
      expect(intercept(req, res)).toBeDefined()
      res.end(chatBody)
    }
    respond()
    respond()
    expect(records).toHaveLength(2)
  })

  it('waits for a slow client of a decoded body with one drain listener, however often the client is full', async () => {
    // compression() hands `res.on('drain')` to its own stream and never takes such a listener off: every
    // listener the interception adds for 'drain' stays for the response's life.
    let drainListeners = 0
    const events: string[] = [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}\n\n',
    ]
    for (let i = 0; i < 4000; i++) {
      events.push(
        `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${String(i).repeat(40)}"}}\n\n`,
      )
    }
    events.push(
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":10,"output_tokens":4000}}\n\n',
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    )
    const stream = gzipSync(events.join(''))
    const { port, records } = await serve((_req, res) => {
      const on = res.on
      res.on = function (this: ServerResponse, type: string | symbol, listener: (...args: unknown[]) => void) {
        if (type === 'drain') drainListeners++
        return on.call(this, type, listener)
      } as ServerResponse['on']
      res.setHeader('content-type', 'text/event-stream')
      res.setHeader('content-encoding', 'gzip')
      for (let at = 0; at < stream.length; at += 1024) res.write(stream.subarray(at, at + 1024))
      res.end()
    })
    const received = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/messages', method: 'POST' }, (res) => {
        let bytes = 0
        res.pause()
        // A client that reads a little at a time: the gateway's writes fill its socket again and again.
        const tick = setInterval(() => {
          let chunk: Buffer | null
          while ((chunk = res.read() as Buffer | null) !== null) bytes += chunk.length
        }, 5)
        res.on('end', () => {
          clearInterval(tick)
          resolve(bytes)
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
    expect(received).toBe(Buffer.byteLength(events.join('')))
    expect((await waitFor(() => records[0])).status).toBe('complete')
    expect(drainListeners).toBe(1)
  })
})

describe('options', () => {
  it('are checked once, when the middleware is created', () => {
    expect(() => createInterceptor({ maxEventBytes: -1 })).toThrow(/maxEventBytes/)
    expect(() => createInterceptor({ routes: [{ path: 42 as unknown as string }] })).toThrow(/path/)
    expect(() => createInterceptor({ routes: [{ path: '/x', dialect: 'acme-chat' as never }] })).toThrow(
      /unknown dialect/,
    )
    expect(() => createInterceptor({ routes: [{ path: /\/llm$/, dialect: 'openai-chat' }] })).not.toThrow()
  })

  it('the logger hears why a response was left untouched', async () => {
    const warnings: string[] = []
    const intercept = createInterceptor({ logger: { warn: (m) => warnings.push(m) } })
    const server = createServer((req, res) => {
      intercept(req, res)
      res.setHeader('content-type', 'text/event-stream')
      res.end('event: message_start\ndata: {not json\n\n')
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    await fetchRaw((server.address() as AddressInfo).port, '/v1/messages')
    await waitFor(() => warnings[0])
    expect(warnings[0]).toMatch(/\/v1\/messages left untouched from byte 0: malformed JSON in message_start event/)
  })
})

describe('routes', () => {
  const delta = [
    'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":40,"output_tokens":1}}}\n\n',
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}\n\n',
  ]

  async function through(routes: RouteRule[], path: string) {
    const records: UsageRecord[] = []
    const intercept = createInterceptor({ routes, onUsage: (r) => records.push(r) })
    const server = createServer((req, res) => {
      intercept(req, res)
      res.setHeader('content-type', 'text/event-stream')
      for (const event of delta) res.write(event)
      res.end()
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    const { body } = await fetchRaw((server.address() as AddressInfo).port, path)
    await new Promise((r) => setTimeout(r, 20))
    return { body: body.toString(), records }
  }

  it('a custom path with its dialect is rewritten and recorded', async () => {
    const { body, records } = await through([{ path: /^\/llm\/claude$/, dialect: 'anthropic-messages' }], '/llm/claude')
    expect(body).toContain('"usage":{"output_tokens":7,"input_tokens":40}')
    expect(records[0]).toMatchObject({
      route: '/llm/claude',
      dialect: 'anthropic-messages',
      usage: { input: 40, output: 7 },
    })
  })

  it('a custom path without a dialect reads it from the first event', async () => {
    const { records } = await through([{ path: '/llm' }], '/gateway/llm')
    expect(records[0]).toMatchObject({ dialect: 'anthropic-messages', usage: { input: 40, output: 7 } })
  })

  it('with routes given, the default paths are no longer intercepted', async () => {
    const { body, records } = await through([{ path: '/llm' }], '/v1/messages')
    expect(body).toBe(delta.join(''))
    expect(records).toHaveLength(0)
  })
})

describe('interceptResponse(...).release()', () => {
  it('gives back an untouched res: its own methods, no listener, no record from it', async () => {
    const { createMeter } = await import('../meter.js')
    const { interceptResponse } = await import('./intercept.js')
    const records: UsageRecord[] = []
    const meter = createMeter({ onUsage: (r) => records.push(r) })
    let released: boolean | undefined
    const server = createServer((req, res) => {
      const own = res.write
      const handle = interceptResponse(meter.begin({ method: 'POST', url: req.url!, headers: () => undefined })!, res)
      released = handle.release() && res.write === own && res.listenerCount('close') === 0
      res.setHeader('content-type', 'application/json')
      res.end(chatBody)
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    const { body } = await fetchRaw((server.address() as AddressInfo).port, '/v1/chat/completions')
    expect(released).toBe(true)
    expect(body.toString()).toBe(chatBody)
    await new Promise((r) => setTimeout(r, 20))
    expect(records).toHaveLength(0)
  })

  it('refuses once a write has reached it, and the response is still rewritten and recorded', async () => {
    const { createMeter } = await import('../meter.js')
    const { interceptResponse } = await import('./intercept.js')
    const records: UsageRecord[] = []
    const meter = createMeter({ onUsage: (r) => records.push(r) })
    let released: boolean | undefined
    const server = createServer((req, res) => {
      const handle = interceptResponse(meter.begin({ method: 'POST', url: req.url!, headers: () => undefined })!, res)
      res.writeHead(200, { 'content-type': 'application/json' })
      released = handle.release()
      res.end(chatBody)
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    await fetchRaw((server.address() as AddressInfo).port, '/v1/chat/completions')
    expect(released).toBe(false)
    expect((await waitFor(() => records[0])).status).toBe('complete')
  })
})

describe('attachExchange', () => {
  it('makes exchangeOf(req) return an Exchange an adapter began with its own meter, and only for that req', async () => {
    const { createMeter } = await import('../meter.js')
    const { attachExchange, exchangeOf } = await import('./intercept.js')
    const meter = createMeter()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const req = {} as IncomingMessage
    const other = {} as IncomingMessage
    expect(exchangeOf(req)).toBeUndefined()
    attachExchange(req, exchange)
    expect(exchangeOf(req)).toBe(exchange)
    expect(exchangeOf(other)).toBeUndefined()
  })
})

describe('how a response is taken over (docs/architecture.md#intercepting-a-node-response)', () => {
  const sse = (usage: object) =>
    `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage })}\n\n`
  const start = `event: message_start\ndata: ${JSON.stringify({
    type: 'message_start',
    message: { model: 'claude-x', usage: { input_tokens: 12, output_tokens: 1 } },
  })}\n\n`

  it('puts no method of its own on a plain response, and still rewrites it', async () => {
    const own: string[][] = []
    const { port, records } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      res.end(sse({ output_tokens: 9 }))
      own.push(['writeHead', 'write', 'end', 'flushHeaders'].filter((name) => Object.hasOwn(res, name)))
    })
    const { body } = await fetchRaw(port, '/v1/messages')
    expect(own).toEqual([[]])
    expect(body.toString()).toContain('"input_tokens":12')
    const record = await waitFor(() => records[0])
    expect(record.usage).toMatchObject({ input: 12, output: 9 })
  })

  it('adds no listener to a response the hooks hold: the record comes as it finishes, before its own close listeners', async () => {
    const seen: unknown[] = []
    const { port, records } = await serve((_req, res) => {
      seen.push(res.listenerCount('close'))
      // Every other event reaches the response's listeners with the arguments it was emitted with.
      res.on('custom', (...args: unknown[]) => seen.push(args))
      res.emit('custom')
      res.emit('custom', 1)
      res.emit('custom', 1, undefined)
      res.emit('custom', 1, 2, 3, 4)
      // A listener the handler adds hears of 'close' after the record is out.
      res.on('close', () => seen.push(`close with ${records.length} record`))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      res.end(sse({ output_tokens: 9 }))
    })
    await fetchRaw(port, '/v1/messages')
    const record = await waitFor(() => records[0])
    await waitFor(() => seen.length === 6 || undefined)
    expect(seen).toEqual([0, [], [1], [1, undefined], [1, 2, 3, 4], 'close with 1 record'])
    expect(record.status).toBe('complete')
    expect(record.usage).toMatchObject({ input: 12, output: 9 })
  })

  it('still records a response whose body it does not read, and one cut short, through the hooks', async () => {
    const { port, records } = await serve((req, res) => {
      if (req.url === '/v1/messages?json') {
        res.writeHead(400, { 'content-type': 'text/plain' })
        res.end('no')
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      setTimeout(() => res.destroy(new Error('upstream reset')), 20)
    })
    await fetchRaw(port, '/v1/messages?json')
    await new Promise<void>((done) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/messages', method: 'POST' }, (res) => {
        res.on('data', () => {})
        res.on('error', () => done())
        res.on('close', () => done())
      })
      req.on('error', () => done())
      req.end()
    })
    await waitFor(() => records[1])
    expect(records.map((r) => r.httpStatus).sort()).toEqual([200, 400])
    const cut = records.find((r) => r.httpStatus === 200)!
    expect(cut.status).toBe('incomplete')
    expect(cut.usage).toMatchObject({ input: 12 })
  })

  it('wraps a method something before it put on the response, so that code still sees the rewritten body', async () => {
    const seen: string[] = []
    const records: UsageRecord[] = []
    const intercept = createInterceptor({ onUsage: (r) => records.push(r) })
    const server = createServer((req, res) => {
      // Middleware mounted before usagewire (compression() does this) wraps write and end.
      const write = res.write
      const end = res.end
      res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
        seen.push(String(chunk))
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
      } as ServerResponse['write']
      res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
        if (chunk != null && typeof chunk !== 'function') seen.push(String(chunk))
        return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest)
      } as ServerResponse['end']
      intercept(req, res)
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      res.end(sse({ input_tokens: 0, output_tokens: 9 }))
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    servers.push(server)
    const { body } = await fetchRaw((server.address() as AddressInfo).port, '/v1/messages')
    const delta = seen.find((piece) => piece.includes('message_delta'))!
    expect(delta).toContain('"input_tokens":12')
    expect(body.toString()).toContain('"input_tokens":12,"output_tokens":9')
    await waitFor(() => records[0])
  })

  it('finds the Exchange of a response, during it and after it, without touching its request', async () => {
    // A request's shape varies from gateway to gateway (with Express, from request to request), so a
    // property added to it, or read off it on every write, misses V8's caches; the Exchange is found
    // through the socket, while the response is held and after it closed.
    const key = Symbol.for('usagewire.exchange')
    const seen: Array<{ onRequest: unknown; found: boolean; reads: number }> = []
    const after: Array<() => unknown> = []
    const written: unknown[] = []
    const { port, records } = await serve((req, res) => {
      const onRequest = (req as unknown as Record<symbol, unknown>)[key]
      let value: unknown
      let reads = 0
      Object.defineProperty(req, key, {
        configurable: true,
        get: () => (reads++, value),
        set: (v) => written.push((value = v)),
      })
      const found = exchangeOf(req) !== undefined
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      for (let i = 0; i < 20; i++) res.write(`event: ping\ndata: {"type":"ping"}\n\n`)
      res.end(sse({ output_tokens: 9 }))
      seen.push({ onRequest, found, reads })
      after.push(() => exchangeOf(req)?.record)
    })
    const { body } = await fetchRaw(port, '/v1/messages')
    expect(body.toString()).toContain('"output_tokens":9,"input_tokens":12')
    expect(seen).toEqual([{ onRequest: undefined, found: true, reads: 0 }])
    const record = await waitFor(() => records[0])
    expect(record.usage).toMatchObject({ input: 12, output: 9 })
    expect(await waitFor(() => after[0]!())).toBe(record)
    expect(written).toEqual([])
  })

  it('finds a finished Exchange until the connection carries its next LLM response', async () => {
    const reqs: IncomingMessage[] = []
    const { port, records } = await serve((req, res) => {
      reqs.push(req)
      if (req.url === '/health') return void res.end('ok')
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      res.end(sse({ output_tokens: 9 }))
    })
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const get = (path: string) =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
          res.resume()
          res.on('end', resolve)
        })
        req.on('error', reject)
        req.end('{}')
      })
    try {
      await get('/v1/messages')
      const first = await waitFor(() => records[0])
      await get('/health') // not an LLM request: the first one's Exchange is still found
      expect(exchangeOf(reqs[0]!)?.record).toBe(first)
      expect(exchangeOf(reqs[1]!)).toBeUndefined()
      await get('/v1/messages')
      const second = await waitFor(() => records[1])
      expect(reqs[2]!.socket).toBe(reqs[0]!.socket) // one connection
      expect(exchangeOf(reqs[2]!)?.record).toBe(second)
      expect(exchangeOf(reqs[0]!)).toBeUndefined()
    } finally {
      agent.destroy()
    }
  })

  it('lets go of a response it held once the response closed, though its connection stays open', async () => {
    const refs: WeakRef<ServerResponse>[] = []
    const { port, records } = await serve((_req, res) => {
      refs.push(new WeakRef(res))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      res.end(sse({ output_tokens: 9 }))
    })
    // A keep-alive connection: the server's socket outlives the response, as in a gateway.
    const agent = new Agent({ keepAlive: true })
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v1/messages', method: 'POST', agent }, (res) => {
          res.resume()
          res.on('end', resolve)
        })
        req.on('error', reject)
        req.end()
      })
      await waitFor(() => records[0])
      expect(refs).toHaveLength(1)
      expect(await collected(refs[0]!)).toBe(true)
      expect(Object.keys(agent.freeSockets)).toHaveLength(1)
    } finally {
      agent.destroy()
    }
  })

  it('rewrites pipelined responses on one connection, the second written before the first ended', async () => {
    const { port, records } = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(start)
      // The first response ends later: the second is written while it has no socket yet.
      if (req.url === '/v1/messages?n=1') setTimeout(() => res.end(sse({ output_tokens: 5 })), 30)
      else res.end(sse({ output_tokens: 7 }))
    })
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      let text = ''
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString()
        if ((text.match(/0\r\n\r\n/g) ?? []).length === 2) {
          socket.end()
          resolve(text)
        }
      })
      socket.on('error', reject)
      const ask = (n: number) => `POST /v1/messages?n=${n} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`
      socket.write(ask(1) + ask(2))
    })
    const first = raw.indexOf('"output_tokens":5')
    const second = raw.indexOf('"output_tokens":7')
    expect(first).toBeGreaterThan(-1)
    expect(second).toBeGreaterThan(first)
    expect(raw.match(/"output_tokens":5,"input_tokens":12/g)).toHaveLength(1)
    expect(raw.match(/"output_tokens":7,"input_tokens":12/g)).toHaveLength(1)
    await waitFor(() => (records.length === 2 ? records : undefined))
    expect(records.map((r) => r.usage.output).sort()).toEqual([5, 7])
  })

  it('leaves a response it does not hold to node:http', async () => {
    const { port, records } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('hello ')
      res.end('world')
    })
    const { body } = await fetchRaw(port, '/health')
    expect(body.toString()).toBe('hello world')
    expect(records).toEqual([])
    // A response of another server in the process, never intercepted, passes the hooks untouched.
    const plain = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end(sse({ input_tokens: 0, output_tokens: 1 }))
    })
    await new Promise<void>((done) => plain.listen(0, '127.0.0.1', done))
    servers.push(plain)
    const other = await fetchRaw((plain.address() as AddressInfo).port, '/v1/messages')
    expect(other.body.toString()).toBe(sse({ input_tokens: 0, output_tokens: 1 }))
  })
})

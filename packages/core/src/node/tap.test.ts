import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { UsageRecord } from '../record.js'
import { createInterceptor } from './intercept.js'
import { runInExchange, tapFetch, tapUpstream, upstreamInterceptor, type InstalledTap } from './tap.js'
import { Agent, request as undiciRequest } from 'undici'

/**
 * The tap's transports: a small translating gateway (OpenAI Chat upstream, Anthropic SSE out, with
 * zeros where the translator does not know the numbers) calls a provider with global fetch, node:http
 * or a fetch of its own, and the client-facing stream ends with the provider's numbers.
 */

const chat = (data: object) => `data: ${JSON.stringify(data)}\n\n`
const PROVIDER = [
  chat({ object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: { content: 'Hel' } }] }),
  chat({ object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: { content: 'lo' } }] }),
  chat({ object: 'chat.completion.chunk', model: 'gpt-x', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
  chat({
    object: 'chat.completion.chunk',
    model: 'gpt-x',
    choices: [],
    usage: { prompt_tokens: 1234, completion_tokens: 56, prompt_tokens_details: { cached_tokens: 1024 } },
  }),
  'data: [DONE]\n\n',
]

const servers: http.Server[] = []
async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = http.createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
})

/**
 * The provider: each event in its own write, optionally gzip-compressed; `cut` drops the usage chunk and
 * resets; `slow` waits that long after the first event; `done` tells whether it wrote its whole answer.
 */
function provider(options: { gzip?: boolean; cut?: boolean; slow?: number; done?: (whole: boolean) => void } = {}) {
  return listen(async (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/event-stream', ...(options.gzip ? { 'content-encoding': 'gzip' } : {}) })
    const out: NodeJS.WritableStream = options.gzip ? zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH }) : res
    if (options.gzip) (out as zlib.Gzip).pipe(res)
    let closed = false
    res.on('close', () => (closed = !res.writableFinished))
    for (const [i, piece] of PROVIDER.entries()) {
      if (options.cut && i === 3) return void res.destroy()
      if (closed) return options.done?.(false)
      out.write(piece)
      await new Promise((r) => setTimeout(r, i === 0 ? (options.slow ?? 5) : 5))
    }
    out.end()
    options.done?.(!closed)
  })
}

const sse = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

/** Translates the provider's chat chunks (as text) into Anthropic SSE with a translator's zeros. */
function translate(res: ServerResponse, chunk: string, state: { carry: string; ended: boolean }): void {
  state.carry += chunk
  let at: number
  while ((at = state.carry.indexOf('\n\n')) !== -1) {
    const event = state.carry.slice(0, at)
    state.carry = state.carry.slice(at + 2)
    const data = event.slice('data: '.length)
    if (data === '[DONE]') continue
    const json = JSON.parse(data)
    const choice = json.choices[0]
    if (choice?.delta?.content) {
      res.write(
        sse('content_block_delta', {
          type: 'content_block_delta',
          index: 0,
          delta: { type: 'text_delta', text: choice.delta.content },
        }),
      )
    }
    if (choice?.finish_reason && !state.ended) {
      state.ended = true
      res.write(
        sse('message_delta', {
          type: 'message_delta',
          delta: { stop_reason: 'end_turn' },
          usage: { output_tokens: 2 },
        }),
      )
      res.write(sse('message_stop', { type: 'message_stop' }))
    }
  }
}

type Call = (url: string, onChunk: (text: string) => void, signal?: AbortSignal) => Promise<void>

const viaFetch =
  (fetchImpl: typeof fetch): Call =>
  async (url, onChunk, signal) => {
    const response = await fetchImpl(url, {
      method: 'POST',
      body: '{"stream":true}',
      headers: { 'content-type': 'application/json' },
      ...(signal ? { signal } : {}),
    })
    const decoder = new TextDecoder()
    for await (const piece of response.body as unknown as AsyncIterable<Uint8Array>)
      onChunk(decoder.decode(piece, { stream: true }))
  }

const viaHttp: Call = (url, onChunk) =>
  new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const stream = res.headers['content-encoding'] === 'gzip' ? res.pipe(zlib.createGunzip()) : res
      stream.setEncoding('utf8')
      stream.on('data', onChunk)
      stream.on('end', resolve)
      stream.on('error', reject)
      res.on('error', reject)
    })
    request.on('error', reject)
    request.end('{"stream":true}')
  })

/** A translating gateway on node:http with usagewire's interceptor, calling `providerUrl` with `call`. */
async function gateway(providerUrl: string, call: Call, records: UsageRecord[], options = {}) {
  const intercept = createInterceptor({ ...options, onUsage: (r) => void records.push(r) })
  return listen((req, res) => {
    const exchange = intercept(req, res)
    // As gateways do: the provider call is cancelled when the client leaves.
    const cancel = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) cancel.abort()
    })
    const handle = async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        sse('message_start', {
          type: 'message_start',
          message: { id: 'm1', model: 'claude-x', usage: { input_tokens: 0, output_tokens: 0 } },
        }),
      )
      const state = { carry: '', ended: false }
      try {
        await call(`${providerUrl}/v1/chat/completions`, (text) => translate(res, text, state), cancel.signal)
      } catch {
        // The provider broke off: the translator ends what it has.
      }
      res.end()
    }
    if (exchange) runInExchange(exchange, () => void handle())
    else void handle()
  })
}

async function ask(
  url: string,
): Promise<{ body: string; usage: Record<string, number>; start: Record<string, number> }> {
  const response = await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}' })
  const body = await response.text()
  const events = body
    .split('\n\n')
    .filter((e) => e.includes('data: '))
    .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)))
  return {
    body,
    usage: events.find((e) => e.type === 'message_delta')?.usage,
    start: events.find((e) => e.type === 'message_start')?.message.usage,
  }
}

const TRUTH = { input_tokens: 210, cache_read_input_tokens: 1024, output_tokens: 56 }
const settle = () => new Promise((r) => setTimeout(r, 20))

describe('the upstream tap, installed with tapUpstream()', () => {
  let tap: InstalledTap
  beforeAll(() => {
    tap = tapUpstream({ maxWaitMs: 2000 })
  })
  afterAll(() => tap.close())

  it.each([
    ['global fetch', viaFetch(fetch), false],
    ['global fetch, gzip', viaFetch(fetch), true],
    ['node:http', viaHttp, false],
    ['node:http, gzip', viaHttp, true],
  ] as const)('reads the provider call made with %s', async (_name, call, gzip) => {
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ gzip }), call, records)
    const seen = await ask(url)
    expect(seen.usage).toEqual(TRUTH)
    expect(seen.body).toContain('"text":"Hel"')
    expect(seen.body.indexOf('"text":"lo"')).toBeGreaterThan(seen.body.indexOf('"text":"Hel"'))
    await settle()
    expect(records).toHaveLength(1)
    expect(records[0]!.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 56 })
    expect(records[0]!.sources.input).toBe('tap:chunk.usage.prompt_tokens')
    expect(records[0]!.status).toBe('complete')
  })

  it("with messageStart 'hold', message_start carries the provider's prompt counts", async () => {
    const records: UsageRecord[] = []
    const url = await gateway(await provider(), viaFetch(fetch), records, { messageStart: 'hold' })
    const seen = await ask(url)
    expect(seen.start).toEqual(TRUTH)
    expect(seen.usage).toEqual(TRUTH)
  })

  it('a provider that breaks off before its usage: the client gets its stream, the record what was known', async () => {
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ cut: true }), viaFetch(fetch), records)
    const began = Date.now()
    const seen = await ask(url)
    expect(Date.now() - began).toBeLessThan(1500) // the failure released the wait, not the timer
    expect(seen.usage).toEqual({ input_tokens: 0, output_tokens: 2 })
    await settle()
    expect(records[0]!.usage.output).toBe(2)
  })

  it('leaves calls made outside an intercepted request alone', async () => {
    const url = await provider()
    let text = ''
    await viaFetch(fetch)(`${url}/v1/chat/completions`, (t) => (text += t))
    expect(text).toBe(PROVIDER.join(''))
  })

  it('is uninstalled by close(): the translated stream keeps its own numbers', async () => {
    const other = tapUpstream()
    other.close()
    tap.close()
    try {
      const records: UsageRecord[] = []
      const url = await gateway(await provider(), viaFetch(fetch), records)
      const seen = await ask(url)
      expect(seen.usage).toEqual({ input_tokens: 0, output_tokens: 2 })
    } finally {
      tap = tapUpstream({ maxWaitMs: 2000 })
    }
  })
})

describe('tapFetch', () => {
  afterEach(settle)

  it('reads the provider call made with a fetch of your own', async () => {
    let calls = 0
    const mine = tapFetch((input: string | URL | Request, init?: RequestInit) => {
      calls++
      return fetch(input, init)
    })
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ gzip: true }), viaFetch(mine as typeof fetch), records)
    const seen = await ask(url)
    expect(calls).toBe(1)
    expect(seen.usage).toEqual(TRUTH)
  })
})

describe('a client that leaves early', () => {
  let tap: InstalledTap
  beforeAll(() => {
    tap = tapUpstream({ maxWaitMs: 2000 })
  })
  afterAll(() => tap.close())

  /** Asks for a stream and leaves after its first text event. */
  async function leave(url: string): Promise<void> {
    const controller = new AbortController()
    const response = await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}', signal: controller.signal })
    const reader = response.body!.getReader()
    let text = ''
    while (!text.includes('"text":"Hel"')) text += Buffer.from((await reader.read()).value!).toString()
    controller.abort()
    await reader.cancel().catch(() => {})
  }

  it('by default cancels the provider call; the record is aborted, with an output estimate when asked', async () => {
    let whole: boolean | undefined
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ slow: 200, done: (w) => (whole = w) }), viaFetch(fetch), records, {
      estimateOutput: (text: string) => text.length * 10,
    })
    await leave(url)
    await new Promise((r) => setTimeout(r, 300))
    expect(whole).toBe(false) // the provider saw its client go
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'aborted', final: false })
    expect(records[0]!.usage.output).toBe(30) // 'Hel', estimated
    expect(records[0]!.sources.output).toBe('estimate:streamed-text')
  })

  it("with onAbort 'drain' reads the provider's answer to its end: the record holds its final usage", async () => {
    let whole: boolean | undefined
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ slow: 100, done: (w) => (whole = w) }), viaFetch(fetch), records, {
      onAbort: 'drain',
    })
    await leave(url)
    await new Promise((r) => setTimeout(r, 20))
    expect(records).toHaveLength(0) // the record waits for the drain
    await new Promise((r) => setTimeout(r, 300))
    expect(whole).toBe(true)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({
      status: 'aborted',
      final: true, // the provider's final usage, read by the tap after the client left
      usage: { input: 210, cacheRead: 1024, output: 56 },
    })
    expect(records[0]!.sources.output).toMatch(/^tap:/)
  })

  it("with onAbort 'drain', a provider slower than maxDrainMs: the record comes at maxDrainMs and the call is let go", async () => {
    let whole: boolean | undefined
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ slow: 2000, done: (w) => (whole = w) }), viaFetch(fetch), records, {
      onAbort: 'drain',
      maxDrainMs: 150,
    })
    await leave(url)
    await new Promise((r) => setTimeout(r, 600))
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'aborted', final: false })
    await vi.waitFor(() => expect(whole).toBe(false), { timeout: 4000 })
  })

  it("with onAbort 'drain', the gateway's own abort (a timeout, its client still there) is carried out", async () => {
    let whole: boolean | undefined
    const records: UsageRecord[] = []
    const providerUrl = await provider({ slow: 400, done: (w) => (whole = w) })
    const intercept = createInterceptor({ onAbort: 'drain', onUsage: (r) => void records.push(r) })
    const url = await listen((req, res) => {
      const exchange = intercept(req, res)!
      runInExchange(exchange, async () => {
        try {
          const response = await fetch(`${providerUrl}/v1/chat/completions`, {
            method: 'POST',
            body: '{"stream":true}',
            signal: AbortSignal.timeout(100),
          })
          await response.text()
        } catch {
          // timed out: the gateway answers without the provider
        }
        res.writeHead(504, { 'content-type': 'application/json' }).end('{"error":{"type":"timeout"}}')
      })
    })
    const response = await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}' })
    expect(response.status).toBe(504)
    await response.text()
    await vi.waitFor(() => expect(whole).toBe(false), { timeout: 3000 })
    expect(records).toHaveLength(1)
  })
})

describe('upstreamInterceptor, composed into an undici 7 Agent of your own', () => {
  const agent = new Agent().compose(upstreamInterceptor() as never)
  afterAll(() => agent.close())

  /** undici's own request API on that Agent: its handlers speak undici 7's onResponseStart/onResponseData. */
  const viaUndici: Call = async (url, onChunk, signal) => {
    const response = await undiciRequest(url, {
      method: 'POST',
      body: '{"stream":true}',
      dispatcher: agent,
      ...(signal ? { signal } : {}),
    })
    const decoder = new TextDecoder()
    for await (const piece of response.body) onChunk(decoder.decode(piece as Uint8Array, { stream: true }))
  }

  it('reads the provider call without tapUpstream() installed', async () => {
    // Without an installed tap, requests do not run inside their Exchange: tapFetch turns that on for good.
    tapFetch(fetch)
    const records: UsageRecord[] = []
    const url = await gateway(await provider(), viaUndici, records)
    const seen = await ask(url)
    expect(seen.usage).toEqual(TRUTH)
    await settle()
    expect(records[0]!.sources.input).toBe('tap:chunk.usage.prompt_tokens')
  })

  it("with onAbort 'drain', reads on after the caller aborted", async () => {
    let whole: boolean | undefined
    const records: UsageRecord[] = []
    const url = await gateway(await provider({ slow: 100, done: (w) => (whole = w) }), viaUndici, records, {
      onAbort: 'drain',
    })
    const controller = new AbortController()
    const response = await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}', signal: controller.signal })
    const reader = response.body!.getReader()
    let text = ''
    while (!text.includes('"text":"Hel"')) text += Buffer.from((await reader.read()).value!).toString()
    controller.abort()
    await reader.cancel().catch(() => {})
    await new Promise((r) => setTimeout(r, 300))
    expect(whole).toBe(true)
    expect(records[0]).toMatchObject({ status: 'aborted', usage: { input: 210, cacheRead: 1024, output: 56 } })
  })
})

/**
 * The sidecar's provider-facing side under the faults its client side already handles, and the traffic
 * shapes that used to skip its request-side work: a provider that resets mid-stream, a gateway that
 * leaves before the provider answered, a gateway that retries with the same correlation header, and
 * `Expect: 100-continue` (curl and libcurl send it for large bodies).
 */
import http from 'node:http'
import zlib from 'node:zlib'
import { startProxy, type UsageRecord } from '@usagewire/proxy'
import { afterEach, describe, expect, it } from 'vitest'
import { listen, shut, waitFor, within } from '../express/helpers.js'

const sse = (input: number, output: number): string[] => [
  `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, usage: { input_tokens: input, output_tokens: 1 } } })}\n\n`,
  `event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n`,
  `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello there' } })}\n\n`,
  `event: content_block_stop\ndata: ${JSON.stringify({ type: 'content_block_stop', index: 0 })}\n\n`,
  `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: output } })}\n\n`,
  `event: message_stop\ndata: ${JSON.stringify({ type: 'message_stop' })}\n\n`,
]
const BODY = JSON.stringify({
  model: 'claude-x',
  max_tokens: 100,
  stream: true,
  messages: [{ role: 'user', content: 'hi' }],
})

const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

async function server(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler)
  const url = await listen(s)
  closers.push(() => shut(s))
  return url
}

/** A POST that settles however the response ends: its status, body, and whether it was cut. */
function post(url: string, headers: http.OutgoingHttpHeaders = {}, body = BODY) {
  return new Promise<{ status: number; body: string; cut: boolean }>((resolve) => {
    let status = 0
    let text = ''
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        status = res.statusCode ?? 0
        res.setEncoding('utf8')
        res.on('data', (part: string) => (text += part))
        res.on('end', () => resolve({ status, body: text, cut: false }))
        res.on('error', () => resolve({ status, body: text, cut: true }))
      },
    )
    req.on('error', () => resolve({ status, body: text, cut: true }))
    req.end(body)
  })
}

async function sidecar(target: string, provider: string, records: UsageRecord[] = []) {
  const proxy = await startProxy({
    listen: '127.0.0.1:0',
    target,
    providerListen: '127.0.0.1:0',
    provider,
    maxWaitMs: 1000,
    onUsage: (record) => void records.push(record),
  })
  closers.push(() => proxy.close(100))
  return proxy
}

/** A gateway that passes client `x-` headers on to the provider, re-streams its text and drops its usage. */
function forwardingGateway(
  providerUrl: () => string,
  attempts = 1,
  headers: Record<string, string> = {},
): http.RequestListener {
  return async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const forwarded = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name.startsWith('x-')))
    for (let attempt = 0; attempt < attempts; attempt++) {
      const response = await fetch(`${providerUrl()}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers, ...(forwarded as Record<string, string>) },
        body: Buffer.concat(chunks),
      })
      const text = await response.text()
      if (response.status === 429 && attempt + 1 < attempts) continue
      res.writeHead(response.status, { 'content-type': 'text/event-stream' })
      return res.end(
        text
          .replace(/"input_tokens":\d+/, '"input_tokens":0')
          .replace(/"output_tokens":\d+}}\n/, '"output_tokens":0}}\n'),
      )
    }
  }
}

describe('the sidecar, provider-facing', () => {
  it('a provider that resets mid-stream: the gateway sees its response cut, not left waiting', async () => {
    const provider = await server((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        const events = sse(25, 7)
        res.write(events[0])
        res.write(events[1])
        setTimeout(() => res.socket?.destroy(), 50)
      })
    })
    const proxy = await sidecar(await server((_req, res) => res.end()), provider)
    const seen = await within(post(`${proxy.providerUrl}/v1/messages`), 5000, 'the gateway was left waiting')
    expect(seen).toMatchObject({ status: 200, cut: true })
  })

  it('a gateway that leaves before the provider answered: the provider request is cancelled', async () => {
    let closedEarly = false
    const provider = await server((req, res) => {
      req.resume()
      res.on('close', () => (closedEarly = !res.writableFinished))
      setTimeout(() => {
        if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      }, 3000)
    })
    const proxy = await sidecar(await server((_req, res) => res.end()), provider)
    const req = http.request(`${proxy.providerUrl}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    })
    req.on('error', () => {})
    req.end(BODY)
    await new Promise((resolve) => setTimeout(resolve, 200))
    req.destroy()
    await waitFor(() => closedEarly, 'the provider request to be cancelled', { timeoutMs: 2000 })
  })

  it('a gateway that retries after a 429 with the same correlation header: the retry is the one joined', async () => {
    let calls = 0
    const provider = await server((req, res) => {
      req.resume()
      req.on('end', () => {
        if (++calls === 1) {
          res.writeHead(429, { 'content-type': 'application/json' })
          return res.end(JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }))
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end(sse(1234, 56).join(''))
      })
    })
    let providerUrl = ''
    const records: UsageRecord[] = []
    const proxy = await sidecar(await server(forwardingGateway(() => providerUrl, 2)), provider, records)
    providerUrl = proxy.providerUrl!
    const seen = await post(`${proxy.url}/v1/messages`)
    expect(seen.status).toBe(200)
    expect(calls).toBe(2)
    const record = await waitFor(() => records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'header' })
    expect(record.usage).toMatchObject({ input: 1234, output: 56 })
  })

  it('a gateway that accepts zstd: the provider is asked only for codings the sidecar reads', async () => {
    const accepted: Array<string | undefined> = []
    const provider = await server((req, res) => {
      accepted.push(req.headers['accept-encoding'])
      req.resume()
      req.on('end', () => {
        // A provider answers in any coding the request accepts; zstd is one Node 20 cannot decode.
        const zstd = /zstd/.test(req.headers['accept-encoding'] ?? '')
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': zstd ? 'zstd' : 'gzip' })
        res.end(zstd ? Buffer.from('not zstd at all') : zlib.gzipSync(sse(1234, 56).join('')))
      })
    })
    let providerUrl = ''
    const records: UsageRecord[] = []
    const gateway = forwardingGateway(() => providerUrl, 1, { 'accept-encoding': 'gzip, zstd;q=1.0' })
    const proxy = await sidecar(await server(gateway), provider, records)
    providerUrl = proxy.providerUrl!
    const seen = await post(`${proxy.url}/v1/messages`)
    expect(seen.status).toBe(200)
    expect(accepted).toEqual(['gzip'])
    const record = await waitFor(() => records[0], 'the record')
    expect(record.usage).toMatchObject({ input: 1234, output: 56 })
    expect(record.sources.input).toMatch(/^tap:/)
  })
})

describe('Expect: 100-continue', () => {
  it('client-facing: the correlation header still reaches the gateway, and the request is joined', async () => {
    const headersSeen: Array<string | undefined> = []
    const provider = await server((req, res) => {
      headersSeen.push(req.headers['x-usagewire-correlation'] as string | undefined)
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end(sse(1234, 56).join(''))
      })
    })
    let providerUrl = ''
    const records: UsageRecord[] = []
    const proxy = await sidecar(await server(forwardingGateway(() => providerUrl)), provider, records)
    providerUrl = proxy.providerUrl!
    const seen = await post(`${proxy.url}/v1/messages`, {
      expect: '100-continue',
      'content-length': Buffer.byteLength(BODY),
    })
    expect(seen.status).toBe(200)
    const record = await waitFor(() => records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'header' })
    expect(record.usage).toMatchObject({ input: 1234, output: 56 })
    expect(headersSeen).toEqual([undefined]) // the sidecar's own header never reaches the provider
  })

  it('provider-facing: a Chat stream whose body the sidecar asks usage for is sent whole, not left hanging', async () => {
    const bodies: string[] = []
    const provider = await server((req, res) => {
      let text = ''
      req.setEncoding('utf8')
      req.on('data', (part: string) => (text += part))
      req.on('end', () => {
        bodies.push(text)
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end('data: [DONE]\n\n')
      })
    })
    const proxy = await sidecar(await server((_req, res) => res.end()), provider)
    const chat = JSON.stringify({ model: 'x', stream: true, messages: [] })
    const seen = await within(
      post(
        `${proxy.providerUrl}/v1/chat/completions`,
        { expect: '100-continue', 'content-length': Buffer.byteLength(chat) },
        chat,
      ),
      5000,
      'the gateway was left waiting',
    )
    expect(seen.status).toBe(200)
    expect(JSON.parse(bodies[0]!)).toMatchObject({ stream_options: { include_usage: true } })
  })
})

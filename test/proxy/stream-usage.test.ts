/**
 * `ensureStreamUsage` on the sidecar's provider-facing listener (docs/sidecar.md#ensurestreamusage): a
 * gateway that streams OpenAI Chat from the provider without `stream_options.include_usage` (as
 * claude-code-router does, configured as its README says) gets no usage, and neither would the sidecar.
 * The sidecar adds the flag to the body it forwards, reads the provider's usage, and leaves the usage-only
 * chunk out of what the gateway gets. Every other request passes byte for byte.
 */
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startProxy, type ProxyOptions } from '@usagewire/proxy'
import { createParser } from 'eventsource-parser'
import { afterEach, describe, expect, it } from 'vitest'
import { listen, shut, waitFor } from '../express/helpers.js'
import { aroundPassThrough } from './helpers.js'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
})

/** What the provider states for every answer, in OpenAI Chat's convention (prompt_tokens includes the cache). */
const USAGE = {
  prompt_tokens: 1850 + 1024,
  completion_tokens: 96,
  total_tokens: 1850 + 1024 + 96,
  prompt_tokens_details: { cached_tokens: 1024 },
  completion_tokens_details: { reasoning_tokens: 0 },
}
/** The same as a record counts it. */
const TRUTH = { input: 1850, cacheRead: 1024, output: 96 }
const PIECES = ['Hello', ' from', ' the provider.']

interface Received {
  path: string
  headers: http.IncomingHttpHeaders
  raw: Buffer
}

/**
 * An OpenAI Chat provider that keeps every request as it arrived. A stream carries usage only when asked:
 * then every chunk says `"usage": null` and a `choices: []` chunk follows the finish, as OpenAI's does.
 */
async function recordingProvider() {
  const received: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const raw = Buffer.concat(chunks)
      received.push({ path: req.url ?? '/', headers: req.headers, raw })
      let body: { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } }
      try {
        body = JSON.parse(raw.toString('utf8'))
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: { type: 'invalid_request_error', message: 'not JSON' } }))
      }
      // A server that knows nothing of stream_options, and says so.
      if (body.model === 'strict' && body.stream_options) {
        res.writeHead(400, { 'content-type': 'application/json' })
        const message = 'Unrecognized request argument supplied: stream_options'
        return res.end(JSON.stringify({ error: { type: 'invalid_request_error', message } }))
      }
      if (req.url === '/v1/messages') {
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(
          JSON.stringify({
            type: 'message',
            role: 'assistant',
            content: [{ type: 'text', text: PIECES.join('') }],
            usage: { input_tokens: 12, output_tokens: 3 },
          }),
        )
      }
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(
          JSON.stringify({
            object: 'chat.completion',
            model: 'gpt-4.1',
            choices: [{ index: 0, message: { role: 'assistant', content: PIECES.join('') }, finish_reason: 'stop' }],
            usage: USAGE,
          }),
        )
      }
      const asked = body.stream_options?.include_usage === true
      const chunk = (choices: object[], usage: object | null = null) =>
        `data: ${JSON.stringify({ object: 'chat.completion.chunk', model: 'gpt-4.1', choices, ...(asked && { usage }) })}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' } }]))
      for (const content of PIECES) {
        await new Promise((r) => setTimeout(r, 2))
        res.write(chunk([{ index: 0, delta: { content } }]))
      }
      res.write(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))
      if (asked) res.write(chunk([], USAGE))
      res.end('data: [DONE]\n\n')
    })
  })
  return { url: await listen(server), received, close: () => shut(server) }
}

/**
 * A gateway like claude-code-router: Anthropic Messages to its clients, a streaming Chat call to the provider
 * that does not ask for usage, whose answer it translates with zeros for every count. It keeps the body it
 * sent and the bytes the provider's answer brought it.
 */
async function unaskingGateway(providerUrl: () => string) {
  const seen: { sent: Buffer[]; got: string[] } = { sent: [], got: [] }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      // Its own spelling: spaces, a member order of its own, a seed past 2^53.
      const sent = Buffer.from(
        `{ "model": "gpt-4.1",  "messages": ${JSON.stringify(request.messages)}, "seed": 12345678901234567890, "stream": true }`,
      )
      seen.sent.push(sent)
      const response = await fetch(`${providerUrl()}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: sent,
      })
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const write = (data: Record<string, unknown>) =>
        res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`)
      write({
        type: 'message_start',
        message: { id: 'msg_g', type: 'message', role: 'assistant', model: request.model, content: [], usage: {} },
      })
      write({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
      const parser = createParser({
        onEvent: (e) => {
          if (e.data === '[DONE]') return
          const content = JSON.parse(e.data).choices?.[0]?.delta?.content
          if (content) write({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: content } })
        },
      })
      const decoder = new TextDecoder()
      let got = ''
      for await (const chunk of response.body!) {
        const text = decoder.decode(chunk as Uint8Array, { stream: true })
        got += text
        parser.feed(text)
      }
      seen.got.push(got)
      write({ type: 'content_block_stop', index: 0 })
      write({
        type: 'message_delta',
        delta: { stop_reason: 'end_turn' },
        usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 },
      })
      write({ type: 'message_stop' })
      res.end()
    })
  })
  return { url: await listen(server), seen, close: () => shut(server) }
}

async function rig(options: Partial<ProxyOptions> = {}) {
  const provider = await recordingProvider()
  open.push(provider)
  let providerUrl = ''
  const gateway = await unaskingGateway(() => providerUrl)
  open.push(gateway)
  const sidecar = await startProxy({
    listen: '127.0.0.1:0',
    target: gateway.url,
    providerListen: '127.0.0.1:0',
    provider: provider.url,
    correlation: ['header', 'content'],
    ...options,
  })
  open.push(sidecar)
  providerUrl = sidecar.providerUrl!
  return { provider, gateway, sidecar }
}

const anthropic = (url: string) => new Anthropic({ apiKey: 'x', baseURL: url, maxRetries: 0 })
const ask = { model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user' as const, content: 'hi' }] }
/** The data of each SSE event in `text`. */
const events = (text: string) =>
  text
    .split('\n\n')
    .filter((e) => e.startsWith('data: ') && !e.startsWith('data: [DONE]'))
    .map((e) => JSON.parse(e.slice(6)))

describe('a gateway that streams Chat without asking for usage', () => {
  it("by default, the provider is asked; the client reads the provider's numbers; the gateway gets the stream it asked for", async () => {
    const { provider, gateway, sidecar } = await rig()
    const message = await anthropic(sidecar.url).messages.stream(ask).finalMessage()
    expect(message.content).toEqual([expect.objectContaining({ type: 'text', text: PIECES.join('') })])
    expect(message.usage).toMatchObject({
      input_tokens: TRUTH.input,
      cache_read_input_tokens: TRUTH.cacheRead,
      output_tokens: TRUTH.output,
    })

    // The provider got the gateway's bytes with the member added first, its length with them.
    const [got] = provider.received
    const sent = gateway.seen.sent[0]!.toString('utf8')
    expect(got!.raw.toString('utf8')).toBe(sent.replace(/^\{/, '{"stream_options":{"include_usage":true},'))
    expect(got!.headers['content-length']).toBe(String(got!.raw.length))
    expect(got!.raw.toString('utf8')).toContain('"seed": 12345678901234567890')

    // The gateway got every chunk but the usage-only one.
    const chunks = events(gateway.seen.got[0]!)
    expect(chunks).toHaveLength(PIECES.length + 2)
    expect(chunks.some((c) => Array.isArray(c.choices) && c.choices.length === 0)).toBe(false)
    expect(chunks.every((c) => c.usage === null)).toBe(true)
    expect(gateway.seen.got[0]).toMatch(/data: \[DONE\]\n\n$/)

    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'content' })
    expect(record.usage).toMatchObject(TRUTH)
    expect(record.sources.input).toMatch(/^tap:/)
  })

  it('with ensureStreamUsage false, the body passes as it came, and the provider states no usage to join', async () => {
    const { provider, gateway, sidecar } = await rig({ ensureStreamUsage: false })
    const message = await anthropic(sidecar.url).messages.stream(ask).finalMessage()
    expect(provider.received[0]!.raw.equals(gateway.seen.sent[0]!)).toBe(true)
    expect(message.usage).toMatchObject({ input_tokens: 0, output_tokens: 0 })
    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'content' })
    expect(record.sources.input ?? 'unknown').not.toMatch(/^tap:/)
  })
})

describe('what the provider-facing listener changes, and what it does not', () => {
  /** The sidecar's provider side, called as a gateway would: the raw body, and how it is framed. */
  /** Sends `body` to the sidecar's provider side at `path`, as a gateway would; the answer's text. */
  function send(providerUrl: string, path: string, body: string | string[], headers: Record<string, string> = {}) {
    return new Promise<string>((resolve, reject) => {
      const req = http.request(new URL(path, providerUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
      })
      req.on('response', (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      // Several writes without a content-length go chunked.
      for (const piece of Array.isArray(body) ? body : [body]) req.write(piece)
      req.end()
    })
  }
  /** A fresh rig, and one call: what the provider received, and what the gateway got back. */
  async function call(path: string, body: string | string[], headers: Record<string, string> = {}) {
    const { provider, sidecar } = await rig()
    const answer = await send(sidecar.providerUrl!, path, body, headers)
    return { received: provider.received[0]!, answer }
  }
  const sized = (body: string) => ({ 'content-length': String(Buffer.byteLength(body)) })

  it('a non-streaming Chat body, a stream that asked already, a Messages body and a malformed one: byte for byte', async () => {
    const plain = '{"model":"gpt-4.1" , "messages":[{"role":"user","content":"h\\u00e9"}],"seed":12345678901234567890}'
    expect((await call('/v1/chat/completions', plain, sized(plain))).received.raw.toString()).toBe(plain)

    const asked = '{"stream":true,"stream_options":{"include_usage":true},"model":"gpt-4.1","messages":[]}'
    const already = await call('/v1/chat/completions', asked, sized(asked))
    expect(already.received.raw.toString()).toBe(asked)
    // It asked: its usage-only chunk reaches it.
    expect(events(already.answer).filter((c) => c.choices.length === 0)).toEqual([
      expect.objectContaining({ usage: USAGE }),
    ])

    const messages = '{"model":"claude-sonnet-4-6","stream":true,"messages":[]}'
    expect((await call('/v1/messages', messages, sized(messages))).received.raw.toString()).toBe(messages)

    const malformed = '{"model":"gpt-4.1","stream":true,"messages":['
    const broken = await call('/v1/chat/completions', malformed, sized(malformed))
    expect(broken.received.raw.toString()).toBe(malformed)
    expect(JSON.parse(broken.answer)).toMatchObject({ error: { message: 'not JSON' } })
  })

  it('a chunked body keeps its framing when unchanged, and gets its length when changed', async () => {
    const unchanged = await call('/v1/chat/completions', ['{"model":"gpt-4.1",', '"messages":[]}'])
    expect(unchanged.received.raw.toString()).toBe('{"model":"gpt-4.1","messages":[]}')
    expect(unchanged.received.headers['transfer-encoding']).toBe('chunked')
    expect(unchanged.received.headers['content-length']).toBeUndefined()

    const changed = await call('/v1/chat/completions', ['{"model":"gpt-4.1",', '"stream":true,"messages":[]}'])
    const raw = changed.received.raw.toString()
    expect(raw).toBe('{"stream_options":{"include_usage":true},"model":"gpt-4.1","stream":true,"messages":[]}')
    expect(changed.received.headers['transfer-encoding']).toBeUndefined()
    expect(changed.received.headers['content-length']).toBe(String(Buffer.byteLength(raw)))
  })

  it('stream_options without include_usage: true gets it, the other options kept; the usage-only chunk is left out', async () => {
    const body = '{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}'
    const { received, answer } = await call('/v1/chat/completions', body, sized(body))
    expect(JSON.parse(received.raw.toString())).toEqual({
      model: 'gpt-4.1',
      stream: true,
      stream_options: { include_usage: true, x: 1 },
      messages: [],
    })
    const chunks = events(answer)
    expect(chunks).toHaveLength(PIECES.length + 2)
    expect(chunks.filter((c) => c.choices.length === 0)).toEqual([])
  })

  it('composes with the correlation header: removed before the provider, the call joined by it', async () => {
    const provider = await recordingProvider()
    open.push(provider)
    // A pass-through gateway: every client header and byte goes on to the provider.
    const sidecar = await aroundPassThrough(provider.url, open)
    const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 })
    // The client asks for no usage: it gets none, and the record has the provider's.
    const stream = await client.chat.completions.create({
      model: 'gpt-4.1',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    })
    let text = ''
    let chunks = 0
    for await (const chunk of stream) {
      chunks++
      text += chunk.choices[0]?.delta?.content ?? ''
      expect(chunk.choices).not.toHaveLength(0)
    }
    expect(text).toBe(PIECES.join(''))
    expect(chunks).toBe(PIECES.length + 2)
    const [received] = provider.received
    expect(received!.headers['x-usagewire-correlation']).toBeUndefined()
    expect(JSON.parse(received!.raw.toString())).toMatchObject({ stream_options: { include_usage: true } })
    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'header' })
    expect(record.usage).toMatchObject(TRUTH)
  })

  it('a provider that refuses the member: its 400 reaches the gateway, and the log says how to turn it off, once', async () => {
    const warnings: string[] = []
    const { provider, sidecar } = await rig({ logger: { warn: (message: string) => void warnings.push(message) } })
    const body = '{"model":"strict","stream":true,"messages":[]}'
    for (let i = 0; i < 2; i++) {
      const answer = await send(sidecar.providerUrl!, '/v1/chat/completions', body, sized(body))
      expect(JSON.parse(answer)).toMatchObject({ error: { message: expect.stringContaining('stream_options') } })
    }
    expect(provider.received).toHaveLength(2)
    expect(warnings).toEqual([expect.stringContaining('--no-ensure-stream-usage')])
    expect(warnings[0]).toMatch(/answered 400/)
  })
})

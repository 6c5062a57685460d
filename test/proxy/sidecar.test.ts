/**
 * `usagewire proxy` beside a gateway it cannot change: the deliberately broken translators of
 * test/translator run without usagewire, their provider base URL pointed at the sidecar's
 * provider-facing listener, their clients at its client-facing one. The sidecar joins each client
 * request to the gateway's provider call and the client reads the provider's numbers.
 */
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import { createParser } from 'eventsource-parser'
import OpenAI from 'openai'
import { startProxy, type ProxyOptions, type Sidecar } from '@usagewire/proxy'
import { afterEach, describe, expect, it } from 'vitest'
import { startProvider, startTranslator, TEXT, type Truth, type UpstreamKind } from '../translator/index.js'
import { MODELS, TRUTHS } from '../tap/helpers.js'
import { listen, shut, waitFor } from '../express/helpers.js'
import { aroundGateway, aroundPassThrough } from './helpers.js'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
})

/**
 * provider ← sidecar (provider side) ← broken translator ← sidecar (client side) ← client. The translator
 * needs the sidecar's provider URL and the sidecar the translator's: a relay in between breaks the circle.
 */
async function sidecarFor(upstream: UpstreamKind, options: Partial<ProxyOptions> = {}) {
  const provider = await startProvider(TRUTHS[upstream])
  open.push(provider)
  let providerUrl = ''
  const relay = http.createServer((req, res) => {
    const target = new URL(req.url ?? '/', providerUrl)
    req.pipe(
      http.request(target, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      }),
    )
  })
  const relayUrl = await listen(relay)
  open.push({ close: () => shut(relay) })
  const translator = await startTranslator({ adapter: 'express', upstream, providerUrl: relayUrl })
  open.push(translator)
  const sidecar = await startProxy({
    listen: '127.0.0.1:0',
    target: translator.url,
    providerListen: '127.0.0.1:0',
    provider: provider.url,
    ...options,
  })
  open.push(sidecar)
  providerUrl = sidecar.providerUrl!
  return { provider, translator, sidecar }
}

const anthropic = (url: string) => new Anthropic({ apiKey: 'x', baseURL: url, maxRetries: 0 })
const ask = (upstream: UpstreamKind) => ({
  model: MODELS[upstream],
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: 'hi' }],
})

const sdkUsage = (truth: Truth) => ({
  input_tokens: truth.input,
  cache_read_input_tokens: truth.cacheRead,
  cache_creation_input_tokens: truth.cacheWrite,
  output_tokens: truth.output,
})

/** The raw events of a streamed answer, in order. */
async function rawEvents(url: string, body: object): Promise<Array<{ event?: string; data: any }>> {
  const response = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'x', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ ...body, stream: true }),
  })
  const events: Array<{ event?: string; data: any }> = []
  const parser = createParser({ onEvent: (e) => events.push({ event: e.event, data: JSON.parse(e.data) }) })
  parser.feed(await response.text())
  return events
}

describe.each(['bedrock-converse', 'openai-responses', 'openai-chat'] as const)(
  'two-sided, %s translator',
  (upstream) => {
    const truth = TRUTHS[upstream]

    it("the Anthropic SDK reads the provider's numbers; the record says the join was by content", async () => {
      const { sidecar } = await sidecarFor(upstream)
      const message = await anthropic(sidecar.url).messages.stream(ask(upstream)).finalMessage()
      expect(message.usage).toMatchObject(sdkUsage(truth))
      expect(message.content).toEqual([expect.objectContaining({ type: 'text', text: TEXT })])
      const record = await waitFor(() => sidecar.records[0], 'the record')
      expect(record.correlation).toEqual({ by: 'content' })
      expect(record.usage).toMatchObject(truth)
      expect(record.sources.input).toMatch(/^tap:/)
    })

    it("with messageStart 'hold', message_start carries the provider's prompt counts", async () => {
      const { sidecar } = await sidecarFor(upstream, { messageStart: 'hold' })
      const events = await rawEvents(sidecar.url, ask(upstream))
      const start = events.find((e) => e.data.type === 'message_start')!
      expect(start.data.message.usage).toMatchObject({
        input_tokens: truth.input,
        cache_read_input_tokens: truth.cacheRead,
      })
      expect(
        events
          .filter((e) => e.data.type === 'content_block_delta')
          .map((e) => e.data.delta.text)
          .join(''),
      ).toBe(TEXT)
    })
  },
)

describe('correlation', () => {
  it('by a single request in flight, when that is the only strategy', async () => {
    const { sidecar } = await sidecarFor('bedrock-converse', { correlation: ['single'] })
    const message = await anthropic(sidecar.url).messages.stream(ask('bedrock-converse')).finalMessage()
    expect(message.usage).toMatchObject(sdkUsage(TRUTHS['bedrock-converse']))
    expect((await waitFor(() => sidecar.records[0], 'the record')).correlation).toEqual({ by: 'single' })
  })

  it('joins nothing when several requests in flight answered the same text: never another request’s numbers', async () => {
    const { sidecar } = await sidecarFor('bedrock-converse', { correlation: ['content', 'single'] })
    const client = anthropic(sidecar.url)
    const messages = await Promise.all(
      Array.from({ length: 6 }, () => client.messages.stream(ask('bedrock-converse')).finalMessage()),
    )
    // The translator's own (wrong) numbers reach each client unchanged but completed: nothing was applied.
    for (const message of messages) expect(message.usage.input_tokens).toBe(0)
    await waitFor(() => sidecar.records.length === 6 || undefined, 'six records')
    for (const record of sidecar.records) {
      expect(record.correlation?.by).toBe('none')
      expect(record.correlation?.reason).toMatch(/ambiguous|no provider call/)
      expect(record.sources.input).not.toMatch(/^tap:/)
    }
    expect(sidecar.records.some((r) => r.correlation?.reason?.startsWith('ambiguous'))).toBe(true)
  })

  it('by the correlation header, through a gateway that passes client headers on', async () => {
    const provider = await startProvider(TRUTHS['openai-chat'])
    open.push(provider)
    // A pass-through gateway: every client header and byte goes on to the provider.
    const sidecar = await aroundPassThrough(provider.url, open)
    const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 })
    const stream = await client.chat.completions.create({
      model: 'gpt-4.1',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    })
    const usages = []
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage)
    expect(usages).toHaveLength(1)
    expect(usages[0]).toMatchObject({ prompt_tokens: 1234, completion_tokens: 56 })
    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toEqual({ by: 'header' })
    // The provider never saw the sidecar's header.
    expect(provider.requests.every((r) => !JSON.stringify(r).includes('x-usagewire-correlation'))).toBe(true)
  })
})

/**
 * An OpenAI Chat provider whose answer and usage follow the prompt: `n` → "answer n", prompt_tokens 100 + n.
 * With `more`, the answer goes on with those pieces, each `everyMs` after the last.
 */
async function echoProvider(more: string[] = [], everyMs = 0) {
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (d) => (text += d))
    req.on('end', async () => {
      const n = Number(JSON.parse(text).messages[0].content)
      const chunk = (data: object) =>
        `data: ${JSON.stringify({ object: 'chat.completion.chunk', model: 'gpt-4.1', ...data })}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const piece of ['answer ', String(n), ...more]) {
        res.write(chunk({ choices: [{ index: 0, delta: { content: piece } }] }))
        await new Promise((r) => setTimeout(r, everyMs || 5 + ((n * 7) % 11)))
      }
      res.write(chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }))
      res.write(
        chunk({ choices: [], usage: { prompt_tokens: 100 + n, completion_tokens: 10 + n, total_tokens: 110 + 2 * n } }),
      )
      res.end('data: [DONE]\n\n')
    })
  })
  return { url: await listen(server), close: () => shut(server) }
}

describe('no cross-talk', () => {
  it('12 concurrent requests with different answers: each client gets its own numbers, joined by content', async () => {
    const provider = await echoProvider()
    open.push(provider)
    const sidecar = await aroundGateway(dropping, provider.url, open)
    const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 })
    const seen = await Promise.all(
      Array.from({ length: 12 }, async (_, n) => {
        const stream = await client.chat.completions.create({
          model: 'gpt-4.1',
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: 'user', content: String(n) }],
        })
        let text = ''
        let prompt = -1
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta?.content ?? ''
          if (chunk.usage) prompt = chunk.usage.prompt_tokens
        }
        return { n, text, prompt }
      }),
    )
    for (const { n, text, prompt } of seen) {
      expect(text).toBe(`answer ${n}`)
      expect(prompt).toBe(100 + n)
    }
    await waitFor(() => sidecar.records.length === 12 || undefined, '12 records')
    expect(sidecar.records.map((r) => r.correlation?.by)).toEqual(Array(12).fill('content'))
  })
})

/** A gateway that drops the correlation header (as most do) and zeroes the usage it forwards. */
const dropping =
  (providerUrl: () => string): http.RequestListener =>
  (req, res) => {
    const headers = { ...req.headers }
    delete headers['x-usagewire-correlation']
    delete headers.host
    const upstream = http.request(new URL(req.url ?? '/', providerUrl()), { method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.setEncoding('utf8')
      up.on('data', (text: string) => res.write(text.replace(/"prompt_tokens":\d+/, '"prompt_tokens":0')))
      up.on('end', () => res.end())
    })
    req.pipe(upstream)
  }

describe('streams longer than the wait, overlapping', () => {
  it('each is joined by content, and its final usage carries the provider numbers', async () => {
    // Answers of ~0.4 s that begin 40 ms apart, against a wait of 150 ms: each answer ends while later
    // ones are still coming, and all share their first word.
    const provider = await echoProvider([' and', ' then', ' some', ' more', ' words', ' to', ' end'], 50)
    open.push(provider)
    const sidecar = await aroundGateway(dropping, provider.url, open, { maxWaitMs: 150 })
    const client = new OpenAI({ apiKey: 'x', baseURL: `${sidecar.url}/v1`, maxRetries: 0 })
    const seen = await Promise.all(
      Array.from({ length: 8 }, async (_, n) => {
        await new Promise((r) => setTimeout(r, 40 * n))
        const stream = await client.chat.completions.create({
          model: 'gpt-4.1',
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: 'user', content: String(n) }],
        })
        let prompt = -1
        for await (const chunk of stream) if (chunk.usage) prompt = chunk.usage.prompt_tokens
        return { n, prompt }
      }),
    )
    for (const { n, prompt } of seen) expect(prompt).toBe(100 + n)
    await waitFor(() => sidecar.records.length === 8 || undefined, '8 records')
    expect(sidecar.records.map((r) => r.correlation?.by)).toEqual(Array(8).fill('content'))
  })
})

describe('one-sided, in front of a gateway', () => {
  it('fixes what the stream itself states, and serves /metrics', async () => {
    const provider = await startProvider(TRUTHS['openai-responses'])
    open.push(provider)
    const translator = await startTranslator({
      adapter: 'express',
      upstream: 'openai-responses',
      providerUrl: provider.url,
    })
    open.push(translator)
    const sidecar = await startProxy({ listen: '127.0.0.1:0', target: translator.url })
    open.push(sidecar)
    expect(sidecar.providerUrl).toBeUndefined()
    const message = await anthropic(sidecar.url).messages.stream(ask('openai-responses')).finalMessage()
    // The translator states input 1234 (cache included) and drops the cache: one side cannot know better.
    expect(message.usage.input_tokens).toBe(1234)
    const record = await waitFor(() => sidecar.records[0], 'the record')
    expect(record.correlation).toBeUndefined()
    const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
    expect(metrics).toMatch(/usagewire_/)
  })
})

describe('the sidecar', () => {
  it('answers 502 with a JSON error when the gateway is down, and still writes a record', async () => {
    const sidecar: Sidecar = await startProxy({ listen: '127.0.0.1:0', target: 'http://127.0.0.1:9' })
    open.push(sidecar)
    const response = await fetch(`${sidecar.url}/v1/messages`, { method: 'POST', body: '{}' })
    expect(response.status).toBeGreaterThanOrEqual(500)
    await waitFor(() => sidecar.records[0], 'the record')
  })

  it('rejects options that cannot work', async () => {
    await expect(
      startProxy({ listen: '127.0.0.1:0', target: 'http://x', providerListen: '127.0.0.1:0' }),
    ).rejects.toThrow(/provider/)
    await expect(startProxy({ listen: 'nowhere:port', target: 'http://x' })).rejects.toThrow(/address/)
    await expect(
      startProxy({
        listen: '127.0.0.1:0',
        target: 'http://x',
        providerListen: '127.0.0.1:0',
        provider: 'http://y',
        correlation: ['guess' as never],
      }),
    ).rejects.toThrow(/correlation/)
    await expect(
      startProxy({ listen: '127.0.0.1:0', target: 'http://x', ensureStreamUsage: 'yes' as never }),
    ).rejects.toThrow(/ensureStreamUsage/)
  })
})

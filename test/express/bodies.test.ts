/**
 * Whole bodies through Express + usagewire + http-proxy-middleware: non-streaming LLM JSON (rewritten or
 * untouched), routes and bodies usagewire must not touch, and upstream HTTP errors.
 */
import { randomBytes } from 'node:crypto'
import Anthropic from '@anthropic-ai/sdk'
import { describe, expect, it } from 'vitest'
import {
  ANTHROPIC_MODEL,
  anthropicMessage,
  anthropicStream,
  CHAT_MODEL,
  chatCompletion,
  JSON_HEADERS,
  parseSse,
  rawRequest,
  sha256,
  SSE_HEADERS,
  useRig,
  anthropicClient,
  openaiClient,
  anthropicRequest,
  chatRequest,
} from './helpers.js'

const rig = useRig()

const post = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'accept-encoding': 'identity' },
  body: JSON.stringify(body),
})

describe('non-streaming LLM bodies', () => {
  it('a rewritten chat body leaves with a Content-Length equal to its new byte length, and the SDK parses it', async () => {
    // Translator shape: cache only in cache_read_input_tokens, prompt_tokens without it, total with it.
    const upstreamBody = JSON.stringify(
      chatCompletion({ prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 }),
    )
    rig.upstream.reply = () => ({ headers: { ...JSON_HEADERS, etag: '"v1"' }, body: upstreamBody })

    const raw = await rawRequest(`${rig.gateway.url}/v1/chat/completions`, post(chatRequest))
    expect(raw.status).toBe(200)
    expect(raw.headers['content-length']).toBe(String(raw.body.length))
    expect(raw.headers['transfer-encoding']).toBeUndefined()
    expect(raw.body.equals(Buffer.from(upstreamBody))).toBe(false) // it was rewritten
    expect(raw.headers.etag).toBeUndefined() // the tag named the upstream's body, not this one
    const json = JSON.parse(raw.body.toString('utf8'))
    expect(json.usage).toMatchObject({
      prompt_tokens: 5200,
      completion_tokens: 50,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect(json.choices[0].message.content).toBe('Héllo ✓')

    const completion = await openaiClient(rig.gateway.url).chat.completions.create(chatRequest)
    expect(completion.usage).toMatchObject({
      prompt_tokens: 5200,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect(completion.choices[0]?.message.content).toBe('Héllo ✓')

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      status: 'complete',
      dialect: 'openai-chat',
      model: CHAT_MODEL,
      streaming: false,
      final: true,
    })
    expect(record.usage).toEqual({ input: 200, cacheRead: 5000, cacheWrite: 0, output: 50, reasoning: 0 })
    expect(record.corrections.length).toBeGreaterThan(0)
    expect(record.corrections.every((c) => c.where === 'body')).toBe(true)
  })

  it('an Anthropic body with nothing to fix leaves byte-for-byte with its Content-Length, and the SDK parses it', async () => {
    const usage = {
      input_tokens: 1200,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 5000,
      output_tokens: 42,
    }
    // Odd spacing on purpose: any re-serialization would show.
    const upstreamBody = JSON.stringify(anthropicMessage(usage), null, 1)
    rig.upstream.reply = () => ({ headers: { ...JSON_HEADERS, etag: '"v1"' }, body: upstreamBody })

    const raw = await rawRequest(`${rig.gateway.url}/v1/messages`, post(anthropicRequest))
    expect(raw.status).toBe(200)
    expect(sha256(raw.body)).toBe(sha256(upstreamBody))
    expect(raw.headers['content-length']).toBe(String(Buffer.byteLength(upstreamBody)))
    expect(raw.headers.etag).toBe('"v1"')

    const message = await anthropicClient(rig.gateway.url).messages.create(anthropicRequest)
    expect(message.usage).toMatchObject(usage)

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      status: 'complete',
      dialect: 'anthropic-messages',
      model: ANTHROPIC_MODEL,
      streaming: false,
      final: true,
    })
    expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 })
    expect(record.corrections).toEqual([])
  })
})

describe('bodies whose length the upstream stated differently', () => {
  it('a rewritten chat body the upstream sent chunked (no Content-Length) leaves chunked and parses', async () => {
    const body = JSON.stringify(
      chatCompletion({ prompt_tokens: 200, completion_tokens: 50, total_tokens: 5250, cache_read_input_tokens: 5000 }),
    )
    rig.upstream.reply = () => ({ headers: JSON_HEADERS, chunks: [body.slice(0, 57), body.slice(57)] })

    const raw = await rawRequest(`${rig.gateway.url}/v1/chat/completions`, post(chatRequest))
    expect(raw.headers['content-length'] ?? String(raw.body.length)).toBe(String(raw.body.length))
    const json = JSON.parse(raw.body.toString('utf8'))
    expect(json.usage).toMatchObject({
      prompt_tokens: 5200,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect((await rig.gateway.record()).usage.cacheRead).toBe(5000)
  })

  it('an SSE stream the upstream sent with a Content-Length leaves without that stale length once rewritten', async () => {
    const body = anthropicStream({
      start: { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 },
      delta: { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
    }).join('')
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, body }) // `body` replies carry a Content-Length

    const raw = await rawRequest(`${rig.gateway.url}/v1/messages`, post({ ...anthropicRequest, stream: true }))
    expect(raw.body.length).toBeGreaterThan(Buffer.byteLength(body)) // the delta grew
    expect(raw.headers['content-length'] ?? String(raw.body.length)).toBe(String(raw.body.length))
    const events = parseSse(raw.body.toString('utf8'))
    expect(events.at(-1)?.name).toBe('message_stop') // nothing cut off
    expect(JSON.parse(events.find((e) => e.name === 'message_delta')!.data).usage).toMatchObject({
      input_tokens: 1200,
      cache_read_input_tokens: 5000,
    })
    expect((await rig.gateway.record()).corrections).toHaveLength(2)
  })
})

describe('what usagewire must leave alone', () => {
  it('non-LLM routes and binary bodies pass byte-for-byte, and non-LLM routes yield no record', async () => {
    const health = '{ "status" : "ok",\n  "uptime": 12 }'
    const upload = randomBytes(256 * 1024)
    const download = randomBytes(192 * 1024 + 7)
    const binaryOnLlmRoute = randomBytes(64 * 1024)
    rig.upstream.reply = (req) => {
      if (req.url === '/health') return { headers: JSON_HEADERS, body: health }
      if (req.url === '/v1/files')
        return { status: 201, headers: { 'content-type': 'application/octet-stream' }, body: download }
      if (req.url === '/v1/messages') {
        return {
          headers: { 'content-type': 'application/octet-stream' },
          chunks: [binaryOnLlmRoute.subarray(0, 1000), binaryOnLlmRoute.subarray(1000)],
        }
      }
      return { status: 404, body: 'not found' }
    }

    const h = await rawRequest(`${rig.gateway.url}/health`)
    expect(h.status).toBe(200)
    expect(sha256(h.body)).toBe(sha256(health))
    expect(h.headers['content-length']).toBe(String(Buffer.byteLength(health)))

    const f = await rawRequest(`${rig.gateway.url}/v1/files`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: upload,
    })
    expect(f.status).toBe(201)
    expect(sha256(rig.upstream.requests[1]!.body)).toBe(sha256(upload)) // request body intact on the way up
    expect(sha256(f.body)).toBe(sha256(download))
    expect(f.headers['content-length']).toBe(String(download.length))

    // An LLM path whose body is not one usagewire reads: forwarded untouched, recorded as passthrough.
    const m = await rawRequest(`${rig.gateway.url}/v1/messages`, { method: 'POST', body: '{}' })
    expect(m.status).toBe(200)
    expect(sha256(m.body)).toBe(sha256(binaryOnLlmRoute))

    // The /v1/messages record is the first and only one: /health and /v1/files (finished earlier) produced none.
    const record = await rig.gateway.record()
    expect(rig.gateway.records).toHaveLength(1)
    expect(record.route).toBe('/v1/messages')
    expect(record.status).toBe('passthrough')
    expect(record.passthrough?.reason).toMatch(/octet-stream/)
    expect(record.corrections).toEqual([])
  })

  it('an upstream HTTP error (429) passes untouched, and the record says upstream_error with httpStatus 429', async () => {
    const errorBody = JSON.stringify({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' },
    })
    rig.upstream.reply = () => ({
      status: 429,
      headers: { ...JSON_HEADERS, 'retry-after': '7', 'request-id': 'req_011CQ429' },
      body: errorBody,
    })

    const raw = await rawRequest(`${rig.gateway.url}/v1/messages`, post(anthropicRequest))
    expect(raw.status).toBe(429)
    expect(sha256(raw.body)).toBe(sha256(errorBody))
    expect(raw.headers['content-length']).toBe(String(Buffer.byteLength(errorBody)))
    expect(raw.headers['retry-after']).toBe('7')

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      id: 'req_011CQ429',
      route: '/v1/messages',
      status: 'upstream_error',
      httpStatus: 429,
      dialect: 'anthropic-messages',
    })
    expect(record.error).toBe('rate_limit_error') // the upstream's error type, read from its body
    expect(record.usage).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 })
    expect(record.corrections).toEqual([])

    // The SDK sees the provider's error as it was sent.
    const client = anthropicClient(rig.gateway.url)
    const error = await client.messages.create(anthropicRequest).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(Anthropic.RateLimitError)
    expect((error as InstanceType<typeof Anthropic.RateLimitError>).status).toBe(429)
    expect((await rig.gateway.record(2)).status).toBe('upstream_error')
  })

  it('an in-stream error event (overloaded_error) passes byte-for-byte; the SDK throws it and the record says upstream_error', async () => {
    const start = anthropicStream({
      start: { input_tokens: 1200, output_tokens: 1 },
      delta: { output_tokens: 2 },
    }).slice(0, 3)
    const chunks = [
      ...start,
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    ]
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks })

    const raw = await rawRequest(`${rig.gateway.url}/v1/messages`, post({ ...anthropicRequest, stream: true }))
    expect(raw.status).toBe(200)
    expect(sha256(raw.body)).toBe(sha256(chunks.join('')))
    const record = await rig.gateway.record()
    expect(record).toMatchObject({ status: 'upstream_error', httpStatus: 200, error: 'overloaded_error', final: false })
    expect(record.usage.input).toBe(1200)

    const client = anthropicClient(rig.gateway.url)
    await expect(client.messages.stream(anthropicRequest).finalMessage()).rejects.toThrow(/Overloaded/)
  })
})

/**
 * Express 4 (the peer range is ^4.17 || ^5): the same one line in an Express 4 gateway.
 */
import express4 from 'express4'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire, type UsageRecord } from '@usagewire/express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatCompletion,
  JSON_HEADERS,
  SSE_HEADERS,
  startUpstream,
  waitFor,
  type Upstream,
  anthropicClient,
} from './helpers.js'

describe('Express 4 gateway', () => {
  let upstream: Upstream
  let server: http.Server
  let url: string
  const records: UsageRecord[] = []

  beforeAll(async () => {
    upstream = await startUpstream()
    const app = express4()
    app.use('/v1', usagewire({ onUsage: (record) => records.push(record) }))
    app.use('/v1', createProxyMiddleware({ target: `${upstream.url}/v1` }))
    server = http.createServer(app)
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((done) => server.close(done))
    await upstream.close()
  })

  it('fixes an Anthropic stream for the SDK and records it under the full path', async () => {
    upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({
        start: { input_tokens: 900, cache_read_input_tokens: 4000, output_tokens: 1 },
        delta: { input_tokens: 0, output_tokens: 33 },
      }),
    })
    const client = anthropicClient(url)
    const message = await client.messages
      .stream({ model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage()
    expect(message.usage).toMatchObject({ input_tokens: 900, cache_read_input_tokens: 4000, output_tokens: 33 })
    const record = await waitFor(() => records[0], 'record')
    expect(record).toMatchObject({
      route: '/v1/messages',
      status: 'complete',
      usage: { input: 900, cacheRead: 4000, output: 33 },
    })
  })

  it('rewrites a JSON body sent with res.end and a Content-Length', async () => {
    upstream.reply = () => ({
      headers: JSON_HEADERS,
      body: JSON.stringify(
        chatCompletion({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 905, cache_read_input_tokens: 800 }),
      ),
    })
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{}' })
    const text = await res.text()
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text))
    expect(JSON.parse(text).usage).toMatchObject({
      prompt_tokens: 900,
      total_tokens: 905,
      prompt_tokens_details: { cached_tokens: 800 },
    })
  })
})

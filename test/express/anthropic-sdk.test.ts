/**
 * The official Anthropic SDK (current, and 0.50.1 whose `message_delta` handling differs:
 * docs/dialects/anthropic-messages.md#how-sdks-accumulate)
 * streaming through Express + usagewire + http-proxy-middleware from a local mock upstream.
 */
import Anthropic050 from 'sdk050'
import express from 'express'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire, type UsageRecord } from '@usagewire/express'
import { describe, expect, it } from 'vitest'
import {
  ANTHROPIC_MODEL,
  anthropicClient,
  anthropicRequest,
  anthropicStream,
  SSE_HEADERS,
  useRig,
  waitFor,
} from './helpers.js'

const rig = useRig()

const request = anthropicRequest

const current = anthropicClient
const sdk050 = (baseURL: string) => new Anthropic050({ apiKey: 'x', baseURL, maxRetries: 0 })

/** The real usage: input excludes the cache (docs/dialects/anthropic-messages.md#input-excludes-the-cache). */
const TRUE_USAGE = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
}

describe('Anthropic Messages stream through the Express gateway', () => {
  it('message_start zeros with totals in message_delta: finalMessage usage and the record are exact', async () => {
    rig.upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({
        start: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
        delta: {
          input_tokens: 1234,
          cache_creation_input_tokens: 300,
          cache_read_input_tokens: 5000,
          output_tokens: 42,
        },
      }),
    })

    const message = await current(rig.gateway.url).messages.stream(request).finalMessage()

    expect(message.usage).toMatchObject({
      input_tokens: 1234,
      cache_read_input_tokens: 5000,
      cache_creation_input_tokens: 300,
      output_tokens: 42,
    })
    // The rewritten stream is still a well-formed message: the text survives intact (multi-byte included).
    expect(message.content.map((block) => (block.type === 'text' ? block.text : ''))).toEqual(['Hello, wörld ✓'])
    expect(rig.upstream.requests[0]?.url).toBe('/v1/messages')

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      route: '/v1/messages',
      method: 'POST',
      status: 'complete',
      httpStatus: 200,
      dialect: 'anthropic-messages',
      model: ANTHROPIC_MODEL,
      streaming: true,
      final: true,
    })
    expect(record.usage).toEqual({ input: 1234, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 })
    expect(record.sources).toEqual({
      input: 'message_delta.usage.input_tokens',
      cacheRead: 'message_delta.usage.cache_read_input_tokens',
      cacheWrite: 'message_delta.usage.cache_creation_input_tokens',
      output: 'message_delta.usage.output_tokens',
      reasoning: 'unknown',
    })
    expect(record.passthrough).toBeUndefined()
    expect(record.timing.firstByteMs).not.toBeNull()
    expect(record.timing.totalMs).toBeGreaterThanOrEqual(record.timing.firstByteMs!)
    expect(rig.gateway.records).toHaveLength(1)
  })

  describe('message_delta with output_tokens only, cache counters on message_start (docs/peer-bugs.md row 29)', () => {
    const stream = () =>
      anthropicStream({
        start: { ...TRUE_USAGE, output_tokens: 1 },
        delta: { output_tokens: 42 },
      })

    it('sdk 0.50.1 (overwrites cache counters unconditionally from the delta) keeps them through the gateway', async () => {
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: stream() })

      // Control: straight against the upstream, 0.50.1 erases both cache counters (absent in the delta).
      const raw = await sdk050(rig.upstream.url).messages.stream(request).finalMessage()
      expect(raw.usage.cache_read_input_tokens ?? null).toBeNull()
      expect(raw.usage.cache_creation_input_tokens ?? null).toBeNull()

      const message = await sdk050(rig.gateway.url).messages.stream(request).finalMessage()
      expect(message.usage).toMatchObject({ ...TRUE_USAGE, output_tokens: 42 })

      const record = await rig.gateway.record()
      expect(record.status).toBe('complete')
      expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 })
      // The delta was completed on the wire with what message_start had said.
      expect(record.corrections).toEqual(
        expect.arrayContaining([
          { where: 'message_delta', field: 'usage.input_tokens', from: null, to: 1200 },
          { where: 'message_delta', field: 'usage.cache_creation_input_tokens', from: null, to: 300 },
          { where: 'message_delta', field: 'usage.cache_read_input_tokens', from: null, to: 5000 },
        ]),
      )
    })

    it('the current SDK keeps them too', async () => {
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: stream() })
      const message = await current(rig.gateway.url).messages.stream(request).finalMessage()
      expect(message.usage).toMatchObject({ ...TRUE_USAGE, output_tokens: 42 })
      expect((await rig.gateway.record()).usage).toEqual({
        input: 1200,
        cacheRead: 5000,
        cacheWrite: 300,
        output: 42,
        reasoning: 0,
      })
    })
  })

  it('message_delta writing 0 over true message_start values: the current SDK keeps them and the record lists the rewrites (docs/peer-bugs.md row 31)', async () => {
    rig.upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({
        start: { ...TRUE_USAGE, output_tokens: 1 },
        delta: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
      }),
    })

    // Control: straight against the upstream, the current SDK takes the zeros (overwrite when present).
    const raw = await current(rig.upstream.url).messages.stream(request).finalMessage()
    expect(raw.usage).toMatchObject({ input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 })

    const message = await current(rig.gateway.url).messages.stream(request).finalMessage()
    expect(message.usage).toMatchObject({ ...TRUE_USAGE, output_tokens: 42 })

    const record = await rig.gateway.record()
    expect(record.status).toBe('complete')
    expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 })
    expect(record.sources.input).toBe('message_start.message.usage.input_tokens')
    expect(record.sources.output).toBe('message_delta.usage.output_tokens')
    expect(record.corrections).toEqual([
      { where: 'message_delta', field: 'usage.input_tokens', from: 0, to: 1200 },
      { where: 'message_delta', field: 'usage.cache_creation_input_tokens', from: 0, to: 300 },
      { where: 'message_delta', field: 'usage.cache_read_input_tokens', from: 0, to: 5000 },
    ])
  })
})

describe('Anthropic record details', () => {
  it('a zero TTL split on message_start is not reported beside the non-zero cacheWrite message_delta settles (split must sum to cacheWrite)', async () => {
    // A translator's zero template includes the TTL split; message_delta never carries one
    // (docs/dialects/anthropic-messages.md#ttl-split).
    rig.upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({
        start: {
          input_tokens: 0,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
          output_tokens: 1,
        },
        delta: {
          input_tokens: 1234,
          cache_creation_input_tokens: 300,
          cache_read_input_tokens: 5000,
          output_tokens: 42,
        },
      }),
    })
    await current(rig.gateway.url).messages.stream(request).finalMessage()

    const { usage } = await rig.gateway.record()
    expect(usage.cacheWrite).toBe(300)
    // "cacheWrite5m/1h: the 5-minute/1-hour TTL part of cacheWrite" (record.ts): parts that sum to 0 under a
    // total of 300 are a contradiction a cost calculator would price as 0 cache writes.
    if (usage.cacheWrite5m !== undefined || usage.cacheWrite1h !== undefined) {
      expect((usage.cacheWrite5m ?? 0) + (usage.cacheWrite1h ?? 0)).toBe(usage.cacheWrite)
    }
  })
})

describe('mounted under a path, as the adapter documents it', () => {
  it("app.use('/v1', usagewire()) before app.use('/v1', proxy to target/v1): routes match the full path and usage is fixed", async () => {
    const records: UsageRecord[] = []
    const app = express()
    app.use('/v1', usagewire({ onUsage: (r) => records.push(r) }))
    // http-proxy-middleware 3 sees the path with Express's mount stripped, so the target carries /v1.
    app.use('/v1', createProxyMiddleware({ target: `${rig.upstream.url}/v1` }))
    const server = http.createServer(app)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      rig.upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: anthropicStream({ start: { ...TRUE_USAGE, output_tokens: 1 }, delta: { output_tokens: 42 } }),
      })
      const baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const message = await sdk050(baseURL).messages.stream(request).finalMessage()
      expect(rig.upstream.requests[0]?.url).toBe('/v1/messages')
      expect(message.usage).toMatchObject({ ...TRUE_USAGE, output_tokens: 42 })
      const record = await waitFor(() => records[0], 'usage record')
      expect(record.route).toBe('/v1/messages')
      expect(record.status).toBe('complete')
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})

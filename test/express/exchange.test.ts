/**
 * The Exchange seen from a gateway's own handler: a truer source writes to its ledger and holds the final
 * usage event until it knows, and the client receives the truth on the wire.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { exchangeOf, usagewire, type UsageRecord } from '@usagewire/express'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicClient,
  anthropicMessage,
  anthropicRequest,
  anthropicStream,
  SSE_HEADERS,
  waitFor,
} from './helpers.js'

const servers: http.Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

/** The provider's own numbers, as a tap on the gateway's call to it would see them. */
const TRUTH = { input: 1234, cacheRead: 61711, cacheWrite: 407, output: 291 }
const TAP_SOURCES = { input: 'tap', cacheRead: 'tap', cacheWrite: 'tap', output: 'tap' }

async function gateway(handler: express.RequestHandler) {
  const records: UsageRecord[] = []
  const app = express()
  app.use(usagewire({ onUsage: (r) => records.push(r) }))
  app.post('/v1/messages', handler)
  const server = http.createServer(app)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  servers.push(server)
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, records }
}

/** A translator's stream: zeros where it did not know, a count of chunks as output. */
const translated = anthropicStream({
  start: { input_tokens: 0, output_tokens: 0 },
  delta: { input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 3 },
})

describe('a hold on the final usage event, from the gateway', () => {
  it('streaming: the final message_delta waits for the truth and carries it', async () => {
    const gw = await gateway((req, res) => {
      const exchange = exchangeOf(req)!
      const hold = exchange.hold(5_000)
      res.writeHead(200, SSE_HEADERS)
      for (const event of translated) res.write(event)
      res.end()
      // The provider's usage arrives after the translated stream has ended.
      setTimeout(() => {
        exchange.ledger.observe('tap', TRUTH, TAP_SOURCES)
        hold.release()
      }, 30)
    })
    const message = await anthropicClient(gw.url).messages.stream(anthropicRequest).finalMessage()
    expect(message.usage).toMatchObject({
      input_tokens: 1234,
      cache_read_input_tokens: 61711,
      cache_creation_input_tokens: 407,
      output_tokens: 291,
    })
    const record = await waitFor(() => gw.records[0], 'record')
    expect(record).toMatchObject({ status: 'complete', final: true, usage: TRUTH })
    expect(record.sources.input).toBe('tap')
  })

  it('a JSON body: its end waits, then leaves rewritten with its new length', async () => {
    const body = JSON.stringify(anthropicMessage({ input_tokens: 0, output_tokens: 3 }))
    const gw = await gateway((req, res) => {
      const exchange = exchangeOf(req)!
      const hold = exchange.hold(5_000)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
      setTimeout(() => {
        exchange.ledger.observe('tap', TRUTH, TAP_SOURCES)
        hold.release()
      }, 30)
    })
    const message = await anthropicClient(gw.url).messages.create(anthropicRequest)
    expect(message.usage).toMatchObject({ input_tokens: 1234, output_tokens: 291 })
    expect((await waitFor(() => gw.records[0], 'record')).usage).toEqual({ ...TRUTH, reasoning: 0 })
  })

  it('the wait is bounded: with no truer source the stream ends as it came, after maxMs', async () => {
    const gw = await gateway((req, res) => {
      exchangeOf(req)!.hold(50)
      res.writeHead(200, SSE_HEADERS)
      for (const event of translated) res.write(event)
      res.end()
    })
    const message = await anthropicClient(gw.url).messages.stream(anthropicRequest).finalMessage()
    expect(message.usage.output_tokens).toBe(3)
    expect((await waitFor(() => gw.records[0], 'record')).status).toBe('complete')
  })
})

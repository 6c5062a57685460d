/**
 * Defects a production gateway hit before the Exchange: each test pins the behaviour a user gets now.
 */
import http from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import express from 'express'
import { usagewire, type UsageRecord } from '@usagewire/express'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatStream,
  JSON_HEADERS,
  parseSse,
  rawRequest,
  SSE_HEADERS,
  startUpstream,
  useRig,
  waitFor,
  within,
} from './helpers.js'

const START = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 }
const DELTA = { output_tokens: 42 }
const post = (url: string, body: unknown = { stream: true }) =>
  rawRequest(url, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body) })

describe('routes and methods', () => {
  const rig = useRig()

  it('routes match whatever the case: /V1/MESSAGES is metered and rewritten like /v1/messages', async () => {
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: anthropicStream({ start: START, delta: DELTA }) })
    const res = await post(`${rig.gateway.url}/V1/MESSAGES`)
    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'anthropic-messages',
      status: 'complete',
      usage: { input: 1200, output: 42 },
    })
    const delta = parseSse(res.body.toString()).find((e) => e.name === 'message_delta')!
    expect(JSON.parse(delta.data).usage).toMatchObject({ input_tokens: 1200, cache_read_input_tokens: 5000 })
  })

  it('OPTIONS and HEAD requests yield no record', async () => {
    // A CORS preflight answered 200 with an empty JSON body, as many upstreams do.
    rig.upstream.reply = () => ({ status: 200, headers: JSON_HEADERS, body: '' })
    await rawRequest(`${rig.gateway.url}/v1/messages`, { method: 'OPTIONS' })
    await rawRequest(`${rig.gateway.url}/v1/messages`, { method: 'HEAD' })
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: anthropicStream({ start: START, delta: DELTA }) })
    await post(`${rig.gateway.url}/v1/messages`)
    const record = await rig.gateway.record()
    expect(record.method).toBe('POST')
    await new Promise((r) => setTimeout(r, 20))
    expect(rig.gateway.records).toHaveLength(1)
  })
})

describe('a gateway whose own handler writes the response', () => {
  const servers: http.Server[] = []
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })

  async function serve(handler: express.RequestHandler, options: Parameters<typeof usagewire>[0] = {}) {
    const records: UsageRecord[] = []
    const app = express()
    app.use(usagewire({ ...options, onUsage: (r) => (records.push(r), options.onUsage?.(r)) }))
    app.post('/v1/messages', handler)
    app.post('/v1/chat/completions', handler)
    const server = http.createServer(app)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    servers.push(server)
    const { port } = server.address() as import('node:net').AddressInfo
    return { url: `http://127.0.0.1:${port}`, records }
  }

  it.each([
    { how: 'pipeline() destroys the response', expected: /ECONNRESET|terminated|aborted|socket/i },
    { how: 'the handler ends the response', expected: /ended before the response did/ },
  ])('a stream cut by an upstream reset is recorded as incomplete when $how', async ({ how, expected }) => {
    const upstream = await startUpstream()
    upstream.reply = () => ({
      headers: SSE_HEADERS,
      chunks: anthropicStream({ start: START, delta: DELTA }).slice(0, 3),
      reset: true,
    })
    try {
      const gateway = await serve(async (_req, res) => {
        const answer = await fetch(`${upstream.url}/v1/messages`, { method: 'POST', body: '{}' })
        res.writeHead(answer.status, SSE_HEADERS)
        const body = Readable.fromWeb(answer.body as import('node:stream/web').ReadableStream)
        if (how.startsWith('pipeline')) await pipeline(body, res).catch(() => {})
        else {
          body.on('error', () => res.end())
          body.pipe(res)
        }
      })
      await post(`${gateway.url}/v1/messages`).catch((error: Error) => error)
      const record = await waitFor(() => gateway.records[0], 'record')
      expect(record).toMatchObject({ status: 'incomplete', final: false, usage: { input: 1200, cacheRead: 5000 } })
      expect(record.error).toMatch(expected)
    } finally {
      await upstream.close()
    }
  })

  it('end() called twice while a gzip body is being decoded: the client gets the whole body', async () => {
    const body = anthropicStream({ start: START, delta: DELTA }).join('')
    const flags: Array<{ writableEnded: boolean; headersSent: boolean }> = []
    const gateway = await serve((_req, res) => {
      res.writeHead(200, { ...SSE_HEADERS, 'content-encoding': 'gzip' })
      res.end(zlib.gzipSync(body))
      flags.push({ writableEnded: res.writableEnded, headersSent: res.headersSent })
      res.end() // a second end, as some error paths do
    })
    const res = await within(post(`${gateway.url}/v1/messages`), 3000, 'the response hung')
    const text = res.body.toString()
    expect(parseSse(text).map((e) => e.name)).toContain('message_stop')
    expect(text).toContain('"input_tokens":1200')
    expect(flags[0]).toEqual({ writableEnded: true, headersSent: true })
    const record = await waitFor(() => gateway.records[0], 'record')
    expect(record).toMatchObject({ status: 'complete', usage: { input: 1200, cacheRead: 5000, output: 42 } })
  })

  it('an async onUsage that rejects is logged and counted, and the gateway keeps serving', async () => {
    const warnings: string[] = []
    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    try {
      const gateway = await serve(
        (_req, res) => {
          res.writeHead(200, SSE_HEADERS)
          res.end(anthropicStream({ start: START, delta: DELTA }).join(''))
        },
        {
          logger: { warn: (m) => warnings.push(m) },
          onUsage: async () => {
            throw new Error('ledger is down')
          },
        },
      )
      await post(`${gateway.url}/v1/messages`)
      await post(`${gateway.url}/v1/messages`)
      await waitFor(() => warnings.length >= 2, 'two warnings')
      await new Promise((r) => setTimeout(r, 20))
      expect(rejections).toEqual([])
      expect(warnings[0]).toMatch(/sink onUsage failed: ledger is down/)
      expect(gateway.records).toHaveLength(2)
    } finally {
      process.off('unhandledRejection', onRejection)
    }
  })

  it('a slow async sink never delays the response', async () => {
    let resolveSink!: () => void
    const sinkDone = new Promise<void>((r) => (resolveSink = r))
    const gateway = await serve(
      (_req, res) => {
        res.writeHead(200, SSE_HEADERS)
        res.end(chatStream({ prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 }).join(''))
      },
      { sinks: [() => sinkDone] },
    )
    const res = await within(post(`${gateway.url}/v1/chat/completions`), 2000, 'the response waited for the sink')
    expect(res.status).toBe(200)
    resolveSink()
  })
})

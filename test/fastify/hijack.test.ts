/**
 * Hijacked replies: a handler that calls `reply.hijack()` and writes to `reply.raw` never reaches
 * `onSend`; usagewire carries those raw writes through the interception it set up in `onRequest`. On a
 * real server (Fastify 5 and 4), so that event-by-event delivery and the client's disconnect are real.
 */
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import Fastify4 from 'fastify4'
import { usagewire, type UsageRecord } from '@usagewire/fastify'
import { afterEach, describe, expect, it } from 'vitest'
import {
  anthropicStream,
  chatCompletion,
  createGate,
  type Gate,
  parseSse,
  rawRequest,
  waitFor,
  within,
} from '../express/helpers.js'

const MAJORS = [
  [5, Fastify],
  [4, Fastify4 as unknown as typeof Fastify], // typed as 5's: its own types name its own instance
] as const

const START = { input_tokens: 2048, cache_creation_input_tokens: 287, cache_read_input_tokens: 30433, output_tokens: 1 }
const ZEROS = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 512 }
const EVENTS = anthropicStream({ start: START, delta: ZEROS })
const AT_DELTA = EVENTS.findIndex((event) => event.startsWith('event: message_delta'))

describe.each(MAJORS)('Fastify %d: reply.hijack() and raw writes', (_, fastify) => {
  let app: FastifyInstance
  let url: string
  let records: UsageRecord[]
  const gates: Gate[] = []
  /** The handler's progress: how many events it wrote, whether it ended, whether `raw` closed first. */
  const handler = { written: 0, ended: false, closedEarly: false }

  async function start(hold: Gate) {
    records = []
    Object.assign(handler, { written: 0, ended: false, closedEarly: false })
    app = fastify({ forceCloseConnections: true })
    await app.register(usagewire, { onUsage: (record) => void records.push(record) })
    app.post('/v1/messages', async (_request, reply) => {
      reply.hijack()
      const res = reply.raw
      res.on('close', () => (handler.closedEarly = !handler.ended))
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      for (const [i, event] of EVENTS.entries()) {
        if (i === AT_DELTA) await hold.promise
        if (res.destroyed) return
        res.write(event)
        handler.written = i + 1
      }
      handler.ended = true
      res.end()
    })
    app.post('/v1/chat/completions', (_request, reply) => {
      reply.hijack()
      const body = JSON.stringify(
        chatCompletion({
          prompt_tokens: 200,
          completion_tokens: 50,
          total_tokens: 5250,
          cache_read_input_tokens: 5000,
        }),
      )
      reply.raw.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      reply.raw.end(body)
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  }

  const gate = () => {
    const g = createGate()
    gates.push(g)
    return g
  }
  afterEach(async () => {
    for (const g of gates.splice(0)) g.open()
    await app.close()
  })

  const request = (signal?: AbortSignal) =>
    fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-x', stream: true }),
      ...(signal ? { signal } : {}),
    })

  async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, done: (text: string) => boolean) {
    const decoder = new TextDecoder()
    let text = ''
    while (!done(text)) {
      const { value, done: eof } = await reader.read()
      if (eof) break
      text += decoder.decode(value, { stream: true })
    }
    return text
  }

  it('raw SSE writes pass event by event and the last usage block leaves complete', async () => {
    const hold = gate()
    await start(hold)
    const reader = (await request()).body!.getReader()
    const first = await within(
      readUntil(reader, (text) => text.includes('content_block_stop')),
      5_000,
      'the hijacked events did not reach the client while the handler waited',
    )
    expect(hold.opened).toBe(false)
    expect(first).toBe(EVENTS.slice(0, AT_DELTA).join(''))
    hold.open()
    const all = first + (await readUntil(reader, () => false))
    const delta = parseSse(all).find((event) => event.name === 'message_delta')!
    expect(JSON.parse(delta.data).usage).toEqual({ ...START, output_tokens: 512 })
    const record = await waitFor(() => records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'complete', final: true, model: 'claude-sonnet-4-6' })
    expect(records).toHaveLength(1)
  })

  it('a raw JSON body with its own Content-Length leaves with the new one', async () => {
    await start(gate())
    const raw = await rawRequest(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    expect(raw.headers['content-length']).toBe(String(raw.body.length))
    expect(JSON.parse(raw.body.toString()).usage.prompt_tokens_details).toEqual({ cached_tokens: 5000 })
    expect(await waitFor(() => records[0], 'the usage record')).toMatchObject({ status: 'complete' })
  })

  it('a client that goes away while the handler writes: one aborted record', async () => {
    await start(gate())
    const controller = new AbortController()
    const reader = (await request(controller.signal)).body!.getReader()
    await readUntil(reader, (text) => text.includes('content_block_stop'))
    controller.abort()
    const record = await waitFor(() => records[0], 'the usage record')
    expect(record).toMatchObject({ status: 'aborted', final: false, usage: { input: 2048 } })
    await waitFor(() => handler.closedEarly, 'the hijacked response to close')
    expect(records).toHaveLength(1)
  })
})

/**
 * Koa gateways as their users write them, where something else happens to the body: usagewire mounted
 * twice, a body stream that failed before usagewire took it, a middleware mounted before usagewire that
 * sends another body in place of the LLM one. Each still yields exactly one record that says what
 * happened, and no client is left waiting.
 */
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { usagewire, type UsageRecord } from '@usagewire/koa'
import { anthropicStream } from '../matrix/upstream.js'
import { closeGateways, KOAS, postJson, startGateway } from './helpers.js'

const START = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 1 }
const DELTA = { input_tokens: 1200, cache_read_input_tokens: 5000, output_tokens: 42 }
const streamRequest = { model: 'claude-sonnet-4-6', max_tokens: 64, stream: true, messages: [] }

afterEach(() => closeGateways())

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.each(KOAS)('%s: faults around the body', (name, App) => {
  it('usagewire mounted twice meters each request once, whether the body is in ctx.body or written to ctx.res', async () => {
    const inner: UsageRecord[] = []
    const gw = await startGateway(App, {
      after: [
        usagewire({ onUsage: (record) => void inner.push(record) }),
        (ctx) => {
          const events = anthropicStream({ start: START, delta: DELTA })
          if (ctx.get('x-raw') === '1') {
            ctx.respond = false
            ctx.res.writeHead(200, { 'content-type': 'text/event-stream' })
            for (const event of events) ctx.res.write(event)
            ctx.res.end()
            return
          }
          ctx.type = 'text/event-stream'
          ctx.body = Readable.from(events)
        },
      ],
    })
    const body = await postJson(`${gw.url}/v1/messages`, streamRequest)
    const raw = await postJson(`${gw.url}/v1/messages`, streamRequest, { 'x-raw': '1' })
    expect(body.body.toString()).toContain('"output_tokens":42')
    expect(raw.body.toString()).toContain('"output_tokens":42')
    await gw.record(2)
    await sleep(20)
    expect(gw.records.map((r) => r.status)).toEqual(['complete', 'complete'])
    expect(inner).toHaveLength(0)
  })

  it('a body stream destroyed before usagewire took it ends the response and yields an incomplete record', async () => {
    const gw = await startGateway(App, {
      after: [
        async (ctx) => {
          const source = new Readable({ read() {} })
          source.on('error', () => {}) // the handler's own listener, as a proxy has on its upstream
          source.push(anthropicStream({ start: START, delta: DELTA })[0])
          ctx.type = 'text/event-stream'
          ctx.body = source
          // The upstream resets while a later await of the handler is still pending.
          source.destroy(new Error('socket hang up'))
          await sleep(20)
        },
      ],
    })
    // Without the fix the carried body waits for events its source will never emit: the client waits
    // for ever and the record comes only when it gives up.
    const answered = await Promise.race([
      postJson(`${gw.url}/v1/messages`, streamRequest).then(
        () => 'answered',
        () => 'answered', // Koa 3 cuts the connection, Koa 2 answers 500: either way the client is told
      ),
      sleep(3000).then(() => 'waiting'),
    ])
    expect(answered).toBe('answered')
    const record = await gw.record()
    if (name === 'Koa 2') {
      // Koa 2's own listener on the body answers 500 before usagewire takes it: that is what the client got.
      expect(record).toMatchObject({ status: 'upstream_error', httpStatus: 500 })
    } else {
      expect(record).toMatchObject({ status: 'incomplete' })
      expect(record.error).toContain('socket hang up')
    }
    await sleep(20)
    expect(gw.records).toHaveLength(1)
  })

  it('an error page a middleware before usagewire puts in place of the LLM body is recorded as upstream_error, not aborted', async () => {
    const gw = await startGateway(App, {
      before: [
        async (ctx, next) => {
          await next()
          if (ctx.status >= 400) ctx.body = { error: { message: 'rate limited, retry later' } }
        },
      ],
      after: [
        (ctx) => {
          ctx.status = 429
          ctx.type = 'application/json'
          ctx.body = Readable.from([
            JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'x' } }),
          ])
        },
      ],
    })
    const res = await postJson(`${gw.url}/v1/messages`, streamRequest)
    expect(res.status).toBe(429)
    expect(JSON.parse(res.body.toString())).toEqual({ error: { message: 'rate limited, retry later' } })
    const record = await gw.record()
    expect(record).toMatchObject({ status: 'upstream_error', httpStatus: 429 })
    await sleep(20)
    expect(gw.records).toHaveLength(1)
  })

  it('an SSE body a middleware before usagewire replaces is recorded as incomplete, saying so, not aborted', async () => {
    const gw = await startGateway(App, {
      before: [
        async (ctx, next) => {
          await next()
          ctx.type = 'application/json'
          ctx.body = '{"error":"custom page"}'
        },
      ],
      after: [
        (ctx) => {
          ctx.type = 'text/event-stream'
          ctx.body = Readable.from(anthropicStream({ start: START, delta: DELTA }))
        },
      ],
    })
    const res = await postJson(`${gw.url}/v1/messages`, streamRequest)
    expect(res.body.toString()).toBe('{"error":"custom page"}')
    const record = await gw.record()
    expect(record.status).toBe('incomplete')
    expect(record.error).toMatch(/dropped/)
  })
})

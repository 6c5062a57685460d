import { describe, expect, it } from 'vitest'
import { createMeter } from './meter.js'
import type { UsageRecord } from './record.js'
import { collected } from './node/test-gc.js'

const SSE = (name: string) => (name === 'content-type' ? 'text/event-stream' : undefined)
const start = (input: number) =>
  `event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":${input},"output_tokens":1}}}\n\n`
const delta = (input: number, output: number) =>
  `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":${input},"output_tokens":${output}}}\n\n`
const text =
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'

function setup(options: Parameters<typeof createMeter>[0] = {}) {
  const records: UsageRecord[] = []
  const meter = createMeter({ ...options, onUsage: (r) => records.push(r) })
  return { meter, records }
}

describe('the Exchange', () => {
  it('is begun only for LLM requests: not for other paths, nor for OPTIONS or HEAD', () => {
    const { meter } = setup()
    expect(meter.begin({ method: 'POST', url: '/v1/models' })).toBeUndefined()
    expect(meter.begin({ method: 'OPTIONS', url: '/v1/messages' })).toBeUndefined()
    expect(meter.begin({ method: 'HEAD', url: '/v1/messages' })).toBeUndefined()
    expect(meter.begin({ method: 'POST', url: '/V1/Messages?beta=true' })?.dialect?.id).toBe('anthropic-messages')
  })

  it('takes the model and the stream flag from the request body when the adapter has it', () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages', body: { model: 'claude-x', stream: true } })!
    exchange.respond(
      { status: 500, headers: (n) => (n === 'content-type' ? 'application/json' : undefined) },
      { decoders: [] },
    )
    exchange.push(Buffer.from('{"type":"error","error":{"type":"api_error","message":"boom"}}'))
    exchange.end()
    exchange.finish({ kind: 'end' })
    expect(records[0]).toMatchObject({
      model: 'claude-x',
      streaming: true,
      status: 'upstream_error',
      error: 'api_error',
    })
  })

  it('learns the request facts from a body parsed after it began, without overriding what it knew', () => {
    const { meter, records } = setup()
    const late = meter.begin({ method: 'POST', url: '/v1/messages' })!
    late.readRequestBody({ model: 'claude-late', stream: false })
    late.respond({ status: 200, headers: (n) => (n === 'content-type' ? 'text/html' : undefined) }, { decoders: [] })
    late.finish({ kind: 'end' })
    const known = meter.begin({ method: 'POST', url: '/v1/messages', body: { model: 'claude-first', stream: true } })!
    known.readRequestBody({ model: 'claude-other', stream: false })
    known.readRequestBody('not an object')
    known.respond({ status: 200, headers: (n) => (n === 'content-type' ? 'text/html' : undefined) }, { decoders: [] })
    known.finish({ kind: 'end' })
    expect(records.map((r) => [r.model, r.streaming])).toEqual([
      ['claude-late', false],
      ['claude-first', true],
    ])
  })

  it('finishes into exactly one record, whatever calls finish later', () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    exchange.push(Buffer.from(start(5) + delta(5, 9)))
    exchange.end()
    const first = exchange.finish({ kind: 'end' })
    expect(exchange.finish({ kind: 'abort' })).toBe(first)
    expect(records).toHaveLength(1)
    expect(records[0]!.status).toBe('complete')
  })

  it('a stream that ends before its stop reason is incomplete', () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    exchange.push(Buffer.from(start(5) + text))
    exchange.end()
    exchange.finish({ kind: 'end' })
    expect(records[0]).toMatchObject({
      status: 'incomplete',
      final: false,
      error: expect.stringMatching(/ended before/),
    })
  })

  it('a 204 yields no record; an unread content type yields a passthrough record', () => {
    const { meter, records } = setup()
    const a = meter.begin({ method: 'POST', url: '/v1/messages' })!
    expect(a.respond({ status: 204, headers: () => undefined }, { decoders: [] })).toEqual({ read: false })
    expect(a.finish({ kind: 'end' })).toBeUndefined()
    const b = meter.begin({ method: 'POST', url: '/v1/messages' })!
    b.respond({ status: 200, headers: (n) => (n === 'content-type' ? 'text/html' : undefined) }, { decoders: [] })
    b.finish({ kind: 'end' })
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({
      status: 'passthrough',
      passthrough: { reason: expect.stringMatching(/text\/html/) },
    })
  })

  it('refuses an encoding its carrier cannot decode, and leaves that body alone', () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const decision = exchange.respond(
      { status: 200, headers: (n) => ({ 'content-type': 'text/event-stream', 'content-encoding': 'zstd' })[n] },
      { decoders: ['gzip'] },
    )
    expect(decision).toEqual({ read: false })
    expect(exchange.finish({ kind: 'end' })?.passthrough?.reason).toMatch(/zstd/)
  })

  it('says whether the body it reads is a stream of events, by framing and route, not by content type alone', () => {
    const { meter } = setup()
    const streaming = (url: string, contentType: string) => {
      const exchange = meter.begin({ method: 'POST', url })!
      exchange.respond(
        { status: 200, headers: (n) => (n === 'content-type' ? contentType : undefined) },
        { decoders: [] },
      )
      return exchange.streaming
    }
    expect(streaming('/v1/messages', 'text/event-stream')).toBe(true)
    expect(streaming('/v1/messages', 'application/json')).toBe(false)
    expect(streaming('/v1beta/models/gemini-2.5-flash:streamGenerateContent', 'application/json')).toBe(true)
    expect(streaming('/v1beta/models/gemini-2.5-flash:generateContent', 'application/json')).toBe(false)
    expect(streaming('/api/chat', 'application/x-ndjson')).toBe(true)
  })
})

describe('attributes', () => {
  it('labels each record with what attributes(request) derives, and survives one that throws', () => {
    const logged: string[] = []
    const { meter, records } = setup({
      attributes: (request) => {
        const key = request.headers?.('x-team')
        if (key === 'boom') throw new Error('no team')
        return { team: String(key) }
      },
      logger: { warn: (m: string) => logged.push(m) },
    })
    for (const team of ['search', 'boom']) {
      const exchange = meter.begin({
        method: 'POST',
        url: '/v1/messages',
        headers: (n) => (n === 'x-team' ? team : undefined),
      })!
      exchange.respond({ status: 200, headers: () => undefined }, { decoders: [] })
      exchange.finish({ kind: 'end' })
    }
    expect(records[0]!.attributes).toEqual({ team: 'search' })
    expect(records[1]!.attributes).toBeUndefined()
    expect(logged.join()).toMatch(/no team/)
  })
})

describe('hold points', () => {
  it('a final usage event waits for a truer source, then leaves with its numbers', () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const hold = exchange.hold(10_000)
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    const out: Uint8Array[] = []
    let ended = false
    exchange.connect({ write: (chunks) => out.push(...chunks), end: () => (ended = true) })
    out.push(
      ...exchange.push(
        Buffer.from(start(0) + text + delta(0, 3) + 'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
      ),
    )
    // Everything up to the final message_delta left; the delta and what follows wait.
    expect(Buffer.concat(out).toString()).toBe(start(0) + text)
    const end = exchange.end()
    expect(end.deferred).toBe(true)
    exchange.ledger.observe('tap', { input: 1234, output: 77 }, { input: 'tap', output: 'tap' })
    hold.release()
    expect(ended).toBe(true)
    const sent = Buffer.concat(out).toString()
    expect(sent).toContain('"usage":{"input_tokens":1234,"output_tokens":77}')
    expect(sent.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n')).toBe(true)
    exchange.finish({ kind: 'end' })
    expect(records[0]).toMatchObject({ status: 'complete', final: true, usage: { input: 1234, output: 77 } })
    expect(records[0]!.sources.input).toBe('tap')
  })

  it('is bounded: the held event leaves when the wait runs out', async () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.hold(20)
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    const out: Uint8Array[] = []
    exchange.connect({ write: (chunks) => out.push(...chunks), end: () => {} })
    out.push(...exchange.push(Buffer.from(start(5) + delta(5, 3))))
    expect(Buffer.concat(out).toString()).toBe(start(5))
    await new Promise((r) => setTimeout(r, 60))
    expect(Buffer.concat(out).toString()).toBe(start(5) + delta(5, 3))
  })

  it('the wait begins when the final event is held, not when the hold was asked for: a long stream still waits', async () => {
    const { meter } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    const hold = exchange.hold(40)
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    const out: Uint8Array[] = []
    exchange.connect({ write: (chunks) => out.push(...chunks), end: () => {} })
    out.push(...exchange.push(Buffer.from(start(5) + text)))
    // The stream goes on longer than the wait.
    await new Promise((r) => setTimeout(r, 80))
    out.push(...exchange.push(Buffer.from(delta(5, 3))))
    expect(Buffer.concat(out).toString()).toBe(start(5) + text)
    await new Promise((r) => setTimeout(r, 10))
    exchange.ledger.observe('tap', { input: 1234, output: 77 }, { input: 'tap', output: 'tap' })
    hold.release()
    expect(Buffer.concat(out).toString()).toContain('"usage":{"input_tokens":1234,"output_tokens":77}')
  })
})

describe('sinks', () => {
  it('a sink that throws or rejects with something that has no string form is still logged and counted', async () => {
    const warnings: string[] = []
    const got: string[] = []
    const odd = Object.create(null) as object
    const { meter } = setup({
      logger: { warn: (m) => warnings.push(m) },
      sinks: [
        () => {
          throw odd
        },
        () => Promise.reject(odd),
        { name: 'ledger', write: (r: UsageRecord) => void got.push(r.id) },
      ],
    })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    exchange.push(Buffer.from(start(5) + delta(5, 3)))
    exchange.end()
    expect(() => exchange.finish({ kind: 'end' })).not.toThrow()
    await new Promise((r) => setTimeout(r, 0))
    expect(got).toHaveLength(1)
    expect(meter.stats).toEqual({ records: 1, failures: 2 })
    expect(warnings.filter((w) => /sink/.test(w))).toHaveLength(2)
  })

  it('a throwing or rejecting sink is logged and counted; the others still get the record', async () => {
    const warnings: string[] = []
    const got: string[] = []
    const { meter } = setup({
      logger: { warn: (m) => warnings.push(m) },
      sinks: [
        () => {
          throw new Error('sync boom')
        },
        async () => {
          throw new Error('async boom')
        },
        { name: 'ledger', write: (r: UsageRecord) => void got.push(r.id) },
      ],
    })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    exchange.push(Buffer.from(start(5) + delta(5, 3)))
    exchange.end()
    exchange.finish({ kind: 'end' })
    await new Promise((r) => setTimeout(r, 0))
    expect(got).toHaveLength(1)
    expect(meter.stats).toEqual({ records: 1, failures: 2 })
    expect(warnings.filter((w) => /sink/.test(w))).toHaveLength(2)
  })
})

describe('the Exchange, once its record is out', () => {
  it('lets go of its carrier and port once the record is out, and passes bytes pushed after it', async () => {
    const { meter, records } = setup()
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
    exchange.respond({ status: 200, headers: SSE }, { decoders: [] })
    let port: object | undefined = { write: () => {}, end: () => {} }
    exchange.connect(port as Parameters<typeof exchange.connect>[0])
    let carrier: object | undefined = {}
    exchange.carrier = carrier
    const refs = [new WeakRef(port), new WeakRef(carrier)]
    port = carrier = undefined
    exchange.push(Buffer.from(start(10)))
    exchange.end()
    // Still the Exchange's while the response goes on.
    expect(await collected(refs[0]!)).toBe(false)
    expect(await collected(refs[1]!)).toBe(false)
    exchange.finish({ kind: 'end' })
    // The Exchange stays reachable (a keep-alive connection keeps its request), what carried it does not.
    expect(exchange.carrier).toBeUndefined()
    expect(await collected(refs[0]!)).toBe(true)
    expect(await collected(refs[1]!)).toBe(true)
    const late = Buffer.from(delta(99, 99))
    expect(exchange.push(late)).toEqual([late])
    expect(records).toHaveLength(1)
    expect(records[0]!.usage.input).toBe(10)
  })
})

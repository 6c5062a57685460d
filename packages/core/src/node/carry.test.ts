import { once } from 'node:events'
import { Readable, Writable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter.js'
import type { UsageRecord } from '../record.js'
import { carryBody, type HeldHead } from './carry.js'
import { chatBody } from './test-bodies.js'
import { collected } from './test-gc.js'

const sse = [
  'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":7,"output_tokens":1}}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":0,"output_tokens":4}}\n\n',
]

/** A framework's held head: a header map the test can read after. */
function heldHead(status: number, headers: Record<string, string | number>): HeldHead & { headers: typeof headers } {
  return {
    status,
    headers,
    getHeader: (name) => headers[name] as string | undefined,
    removeHeader: (name) => void delete headers[name],
    setHeader: (name, value) => void (headers[name] = value),
  }
}

function begin(url: string) {
  const records: UsageRecord[] = []
  const exchange = createMeter({ onUsage: (r) => records.push(r) }).begin({ method: 'POST', url })!
  return { exchange, records }
}

const drain = async (body: Readable): Promise<string> => {
  let text = ''
  for await (const chunk of body) text += String(chunk)
  return text
}

describe('carryBody: a framework body through the Exchange', () => {
  it('a gzip JSON Buffer is decoded, rewritten, sent identity with its new length; the ETag goes', () => {
    const { exchange, records } = begin('/v1/chat/completions')
    const head = heldHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', etag: '"x"' })
    const out = carryBody(exchange, head, gzipSync(chatBody)) as Buffer
    expect(JSON.parse(out.toString()).usage).toMatchObject({
      prompt_tokens: 1000,
      prompt_tokens_details: { cached_tokens: 800 },
    })
    expect(head.headers).toEqual({ 'content-type': 'application/json', 'content-length': out.length })
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 200, cacheRead: 800, output: 10 } })
  })

  it('a Buffer that cannot be decoded is sent exactly as it came, headers untouched', () => {
    const { exchange, records } = begin('/v1/chat/completions')
    const broken = Buffer.from('not gzip at all')
    const head = heldHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': 15 })
    expect(carryBody(exchange, head, broken)).toBe(broken)
    expect(head.headers['content-encoding']).toBe('gzip')
    expect(records[0]).toMatchObject({ status: 'passthrough', passthrough: { reason: expect.stringMatching(/gzip/) } })
  })

  it('a stream is carried by a stream of its own; its record is written when it ends', async () => {
    const { exchange, records } = begin('/v1/messages')
    const head = heldHead(200, { 'content-type': 'text/event-stream', 'content-length': 999 })
    const out = carryBody(exchange, head, Readable.from(sse.map((s) => Buffer.from(s)))) as Readable
    expect(head.headers['content-length']).toBeUndefined()
    expect(await drain(out)).toContain('"usage":{"input_tokens":7,"output_tokens":4}')
    expect(records[0]).toMatchObject({ status: 'complete', final: true, usage: { input: 7, output: 4 } })
  })

  it('a stream whose source fails is recorded incomplete; one destroyed by the framework, aborted', async () => {
    const failing = begin('/v1/messages')
    const source = new Readable({ read() {} })
    const out = carryBody(failing.exchange, heldHead(200, { 'content-type': 'text/event-stream' }), source) as Readable
    out.on('error', () => {})
    source.push(sse[0])
    source.destroy(new Error('upstream reset'))
    await new Promise((r) => setTimeout(r, 10))
    expect(failing.records[0]).toMatchObject({ status: 'incomplete', error: 'upstream reset' })

    const aborted = begin('/v1/messages')
    const open = new Readable({ read() {} })
    const carried = carryBody(
      aborted.exchange,
      heldHead(200, { 'content-type': 'text/event-stream' }),
      open,
    ) as Readable
    open.push(sse[0])
    carried.destroy()
    await new Promise((r) => setTimeout(r, 10))
    expect(aborted.records[0]).toMatchObject({ status: 'aborted' })
  })

  it('a carried stream the framework destroys releases its source; one that ends leaves it to end itself', async () => {
    const aborted = begin('/v1/messages')
    const source = new Readable({ read() {} })
    const carried = carryBody(
      aborted.exchange,
      heldHead(200, { 'content-type': 'text/event-stream' }),
      source,
    ) as Readable
    source.push(sse[0])
    carried.destroy()
    await once(carried, 'close')
    expect(source.destroyed).toBe(true)
    expect(source.readableEnded).toBe(false)
    expect(aborted.records[0]).toMatchObject({ status: 'aborted' })

    const ended = begin('/v1/messages')
    const whole = Readable.from(sse.map((s) => Buffer.from(s)))
    const errors: unknown[] = []
    whole.on('error', (error) => errors.push(error))
    const out = carryBody(ended.exchange, heldHead(200, { 'content-type': 'text/event-stream' }), whole) as Readable
    await drain(out)
    expect(whole.readableEnded).toBe(true)
    expect(errors).toEqual([])
    expect(ended.records[0]).toMatchObject({ status: 'complete' })
  })

  it('a source that fails as it is released (undici: "Request aborted") raises no unhandled error', async () => {
    const { exchange, records } = begin('/v1/messages')
    const source = new Readable({
      read() {},
      destroy(_error, callback) {
        callback(new Error('Request aborted'))
      },
    })
    const carried = carryBody(exchange, heldHead(200, { 'content-type': 'text/event-stream' }), source) as Readable
    source.push(sse[0])
    await new Promise((r) => setImmediate(r))
    carried.destroy()
    await new Promise((r) => source.on('close', r))
    // An 'error' with no listener would have thrown out of the event loop, failing this test.
    expect(source.destroyed).toBe(true)
    expect(records[0]).toMatchObject({ status: 'aborted' })
  })

  it('a reader that does not read pauses the source: the carried stream holds no more than its buffer', async () => {
    const { exchange, records } = begin('/v1/messages')
    const delta = Buffer.from(
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"' +
        'x'.repeat(900) +
        '"}}\n\n',
    )
    let sent = 0
    const source = new Readable({
      read() {
        // 4 MiB of deltas after message_start, and message_delta at the end.
        if (sent === 0) this.push(sse[0])
        if (sent >= 4 << 20) {
          this.push(sse[1])
          this.push(null)
          return
        }
        sent += delta.length
        this.push(delta)
      },
    })
    const out = carryBody(exchange, heldHead(200, { 'content-type': 'text/event-stream' }), source) as Readable
    await new Promise((r) => setTimeout(r, 50))
    // Nobody reads yet: the source stopped within a few chunks of the carried stream's own buffer.
    expect(source.isPaused()).toBe(true)
    expect(out.readableLength).toBeLessThan(out.readableHighWaterMark + 2 * delta.length)
    expect(sent).toBeLessThan(256 << 10)
    // Read at last, everything arrives and the record is whole.
    const text = await drain(out)
    expect(text.length).toBeGreaterThan(4 << 20)
    expect(text).toContain('"usage":{"input_tokens":7,"output_tokens":4}')
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 7, output: 4 } })
  })

  it('a JSON stream keeps a Content-Length, set to the new length (ETag gone) before its first byte leaves', async () => {
    const { exchange, records } = begin('/v1/chat/completions')
    const head = heldHead(200, { 'content-type': 'application/json', 'content-length': 4, etag: '"x"' })
    const lengths: unknown[] = []
    const out = carryBody(
      exchange,
      head,
      Readable.from([Buffer.from(chatBody.slice(0, 40)), Buffer.from(chatBody.slice(40))]),
    )
    ;(out as Readable).once('data', () => lengths.push(head.headers['content-length']))
    const sent = await drain(out as Readable)
    expect(JSON.parse(sent).usage.prompt_tokens_details).toEqual({ cached_tokens: 800 })
    expect(lengths).toEqual([Buffer.byteLength(sent)])
    expect(head.headers.etag).toBeUndefined()
    expect(records[0]).toMatchObject({ status: 'complete' })
  })

  it('a JSON stream whose head lost its length meanwhile (compressed after) is left to frame itself', async () => {
    const { exchange } = begin('/v1/chat/completions')
    const head = heldHead(200, { 'content-type': 'application/json', 'content-length': 4 })
    const out = carryBody(exchange, head, Readable.from([Buffer.from(chatBody)])) as Readable
    delete head.headers['content-length']
    await drain(out)
    expect(head.headers['content-length']).toBeUndefined()
  })

  it('a JSON stream over the size bound leaves as it arrives, without a Content-Length', async () => {
    const exchange = createMeter({ maxEventBytes: 64 }).begin({ method: 'POST', url: '/v1/chat/completions' })!
    const head = heldHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(chatBody) })
    const out = carryBody(
      exchange,
      head,
      Readable.from([Buffer.from(chatBody.slice(0, 100)), Buffer.from(chatBody.slice(100))]),
    )
    const lengths: unknown[] = []
    ;(out as Readable).once('data', () => lengths.push(head.headers['content-length']))
    expect(await drain(out as Readable)).toBe(chatBody)
    expect(lengths).toEqual([undefined])
  })

  it('held for a truer source, bytes become a stream that carries the truth when the hold is released', async () => {
    const { exchange, records } = begin('/v1/messages')
    const hold = exchange.hold(5_000)
    const out = carryBody(exchange, heldHead(200, { 'content-type': 'text/event-stream' }), sse.join('')) as Readable
    expect(out).toBeInstanceOf(Readable)
    setTimeout(() => {
      exchange.ledger.observe('tap', { input: 70, output: 40 }, { input: 'tap', output: 'tap' })
      hold.release()
    }, 10)
    expect(await drain(out)).toBe(
      sse[0] + sse[1]!.replace('"input_tokens":0,"output_tokens":4', '"input_tokens":70,"output_tokens":40'),
    )
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 70, output: 40 } })
  })

  it('a body on a response it does not read is returned as it is, with its record', () => {
    const { exchange, records } = begin('/v1/messages')
    const body = '<html>'
    expect(carryBody(exchange, heldHead(200, { 'content-type': 'text/html' }), body)).toBe(body)
    expect(records[0]).toMatchObject({ status: 'passthrough' })
  })

  it('a carried stream lets go of its source once it ended, though the framework keeps the carried body', async () => {
    const { exchange, records } = begin('/v1/messages')
    let source: Readable | undefined = Readable.from(sse.map((s) => Buffer.from(s)))
    const carried = carryBody(exchange, heldHead(200, { 'content-type': 'text/event-stream' }), source) as Readable
    const ref = new WeakRef(source)
    expect(await drain(carried)).toContain('message_delta')
    expect(source.listenerCount('data')).toBe(0)
    source = undefined
    // A framework (Koa's response listeners) may keep the body it was given long after the response.
    expect(carried.readableEnded).toBe(true)
    expect(await collected(ref)).toBe(true)
    expect(records).toHaveLength(1)
  })

  it('a carried stream lets go of what tells it the client left (the response) once it ended', async () => {
    const { exchange, records } = begin('/v1/messages')
    // Stands for the response the adapter's clientLeft reads, and through its socket, later requests.
    const carry = (): [Readable, WeakRef<object>] => {
      const response = { destroyed: false }
      const head = { ...heldHead(200, { 'content-type': 'text/event-stream' }), clientLeft: () => response.destroyed }
      const body = carryBody(exchange, head, Readable.from(sse.map((s) => Buffer.from(s)))) as Readable
      return [body, new WeakRef(response)]
    }
    const [carried, ref] = carry()
    expect(await drain(carried)).toContain('message_delta')
    expect(carried.readableEnded).toBe(true)
    expect(await collected(ref)).toBe(true)
    expect(records).toHaveLength(1)
  })
})

describe('a carried stream piped to one destination', () => {
  const delta = (i: number) =>
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${i}${'x'.repeat(900)}"}}\n\n`
  const chunks = [sse[0]!, ...Array.from({ length: 200 }, (_, i) => delta(i)), sse[1]!]
  const expected = chunks.join('').replace('"input_tokens":0,"output_tokens":4', '"input_tokens":7,"output_tokens":4')

  /** A destination that takes a write per turn of the event loop, keeping what it got. */
  function slowDestination() {
    const got: Buffer[] = []
    let most = 0
    const dest = new Writable({
      highWaterMark: 4096,
      write(chunk: Buffer, _encoding, callback) {
        got.push(chunk)
        setImmediate(callback)
      },
    })
    const write = dest.write.bind(dest)
    dest.write = ((chunk: Buffer) => {
      const ok = write(chunk)
      most = Math.max(most, dest.writableLength)
      return ok
    }) as typeof dest.write
    return { dest, got, most: () => most }
  }

  function carried() {
    const { exchange, records } = begin('/v1/messages')
    const source = new Readable({ read() {} })
    const out = carryBody(exchange, heldHead(200, { 'content-type': 'text/event-stream' }), source) as Readable
    let dataEvents = 0
    const emit = out.emit.bind(out)
    out.emit = ((event: string, ...args: unknown[]) => {
      if (event === 'data') dataEvents++
      return emit(event, ...args)
    }) as typeof out.emit
    return { source, out, records, dataEvents: () => dataEvents }
  }

  it('writes to it directly, in order, and a full destination pauses the source until it drains', async () => {
    const { source, out, records, dataEvents } = carried()
    const { dest, got, most } = slowDestination()
    out.pipe(dest)
    let paused = 0
    for (const [i, chunk] of chunks.entries()) {
      source.push(chunk)
      // In bursts of ten chunks: more than the destination takes at once.
      if (i % 10 !== 9) continue
      await new Promise((r) => setImmediate(r))
      if (source.isPaused()) paused++
    }
    source.push(null)
    await once(dest, 'finish')
    expect(Buffer.concat(got).toString()).toBe(expected)
    // Bounded: the destination never held much more than its high-water mark.
    expect(most()).toBeLessThan(4096 + 2048)
    expect(paused).toBeGreaterThan(0)
    expect(dataEvents()).toBe(0)
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 7, output: 4 } })
  })

  it('a second reader, a pause or an unpipe sends bytes the Readable way again, none lost or reordered', async () => {
    for (const what of ['listener', 'pause', 'unpipe'] as const) {
      const { source, out, records } = carried()
      const { dest, got } = slowDestination()
      out.pipe(dest)
      const seen: Buffer[] = []
      for (const [i, chunk] of chunks.entries()) {
        if (i === 50) {
          if (what === 'listener') out.on('data', (c: Buffer) => seen.push(c))
          if (what === 'pause') out.pause()
          if (what === 'unpipe') out.unpipe(dest)
        }
        source.push(chunk)
        await new Promise((r) => setImmediate(r))
        if (i === 50 && what === 'pause') {
          // Paused: nothing of this chunk reached the destination.
          expect(Buffer.concat(got).toString()).not.toContain('"text":"49')
          out.resume()
        }
      }
      source.push(null)
      if (what === 'unpipe') {
        const rest = await drain(out)
        expect(Buffer.concat(got).toString() + rest).toBe(expected)
        expect(rest.startsWith(chunks[50]!.slice(0, 40))).toBe(true)
      } else {
        await once(dest, 'finish')
        expect(Buffer.concat(got).toString()).toBe(expected)
      }
      if (what === 'listener')
        expect(Buffer.concat(seen).toString()).toBe(
          chunks.slice(50).join('').replace('"input_tokens":0,"output_tokens":4', '"input_tokens":7,"output_tokens":4'),
        )
      expect(records[0]).toMatchObject({ status: 'complete' })
    }
  })
})

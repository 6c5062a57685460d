/**
 * How a stream lives through the gateway: event-by-event delivery (plain, from a compressed upstream,
 * and behind the framework's own compression), a client that leaves mid-stream, and a client that stops
 * reading. Ordering is pinned with gates, never with timings: the upstream waits before each event, and
 * the client must hold event N before the test lets the upstream send N+1.
 */
import http from 'node:http'
import { expect } from 'vitest'
import { ACCEPT_ALL, decodeBody, eventCount, openStream, rawRequest } from '../client.js'
import {
  COMPLETE,
  expectBytes,
  expectHonestLength,
  expectRecordAsOracle,
  oracle,
  post,
  type Rig,
  type Scenario,
} from '../rig.js'
import {
  ANTHROPIC_MODEL,
  anthropicStream,
  chatCompletion,
  chatStream,
  JSON_HEADERS,
  responsesStream,
  SSE_HEADERS,
  sseEvent,
  waitFor,
  within,
  type Encoding,
} from '../upstream.js'
import { BARE_RESPONSES, TRANSLATED_CHAT, TRUE_ANTHROPIC, TRUE_CHAT_RECORD, ZEROING_ANTHROPIC } from './shapes.js'

const STREAMS = [
  ['Anthropic', '/v1/messages', ZEROING_ANTHROPIC],
  ['Chat', '/v1/chat/completions', () => chatStream(TRANSLATED_CHAT)],
  ['Responses', '/v1/responses', () => responsesStream(BARE_RESPONSES)],
] as const

/**
 * The upstream waits on a gate before every event after the first; the client must hold event N (decoded)
 * before the test opens the gate for event N+1. A gateway that holds anything back (its head, an event, a
 * compression window) never gets there and fails with a message, not a timeout.
 */
async function eventByEvent(
  rig: Rig,
  path: string,
  events: string[],
  { compress = false, encoding }: { compress?: boolean; encoding?: Encoding } = {},
): Promise<void> {
  const url = await rig.gateway(compress ? { compress: true } : {})
  const gates = events.map(() => rig.gate())
  rig.upstream.reply = () => ({
    headers: SSE_HEADERS,
    chunks: events,
    encoding,
    before: (i) => (i > 0 ? gates[i]!.promise : undefined),
  })
  const id = rig.id()
  const stream = await openStream(
    `${url}${path}`,
    post(id, { stream: true }, compress ? { 'accept-encoding': 'gzip' } : encoding ? ACCEPT_ALL : {}),
  )
  expect(stream.status).toBe(200)
  if (compress) expect(stream.headers['content-encoding']).toBe(rig.driver.compresses === false ? undefined : 'gzip')
  for (let n = 1; n <= events.length; n++) {
    const held = n < events.length ? ` while the upstream holds event ${n + 1} (held back by the gateway?)` : ''
    await stream.until((text) => eventCount(text) >= n, `event ${n}${held}`)
    if (n === events.length) break
    await waitFor(() => rig.upstream.progress(id)?.waitingBefore === n, `the upstream to wait before event ${n + 1}`)
    expect(gates[n]!.opened).toBe(false)
    expect(rig.upstream.progress(id)!.sent).toBe(n)
    gates[n]!.open()
  }
  const all = await stream.end()
  const expected = oracle(events.join(''), path, 'text/event-stream')
  expectBytes(all, expected.output, 'decoded body')
  const record = await rig.record(id)
  expect(record).toMatchObject(COMPLETE)
  expectRecordAsOracle(record, expected.record)
}

export const DELIVERY: Scenario[] = [
  ...[false, true].flatMap((compress) =>
    STREAMS.map(([dialect, path, events]): Scenario => ({
      name: compress
        ? `behind the framework's compression, ${dialect} SSE reaches a gzip client decoded, event by event`
        : `${dialect} SSE reaches the client event by event (event N before the upstream sends N+1)`,
      run: (rig) => eventByEvent(rig, path, events(), { compress }),
    })),
  ),
  ...(['gzip', 'br', 'deflate'] as const).map((encoding): Scenario => ({
    name: `Anthropic SSE from a ${encoding} upstream flushing per event reaches the client decoded, event by event`,
    run: (rig) => eventByEvent(rig, '/v1/messages', ZEROING_ANTHROPIC(), { encoding }),
  })),
  {
    name: "behind the framework's compression, a rewritten JSON body decodes with its usage fixed and a true length",
    async run(rig) {
      const url = await rig.gateway({ compress: true })
      // Long enough for any compression threshold.
      const sent = JSON.stringify(chatCompletion(TRANSLATED_CHAT, 'Héllo ✓ '.repeat(300)))
      rig.upstream.reply = () => ({ headers: JSON_HEADERS, body: sent })
      const id = rig.id()
      const res = await rawRequest(`${url}/v1/chat/completions`, post(id, {}, { 'accept-encoding': 'gzip' }))
      expect(res.status).toBe(200)
      expectHonestLength(res)
      const expected = oracle(sent, '/v1/chat/completions', 'application/json')
      expectBytes(decodeBody(res), expected.output, 'decoded body')
      const record = await rig.record(id)
      expect(record.usage).toEqual(TRUE_CHAT_RECORD)
      expectRecordAsOracle(record, expected.record)
    },
  },
]

// ---------------------------------------------------------------------------------------------------------
// A client that leaves, a client that stops reading

/** A content event of about 16 KiB. */
const BIG_DELTA = sseEvent('content_block_delta', {
  type: 'content_block_delta',
  index: 0,
  delta: { type: 'text_delta', text: 'x'.repeat(16 * 1024) },
})
/**
 * What may be in flight when the client stops reading: socket buffers on both hops (the kernel's send
 * and receive buffers, a few MiB each on loopback; Express measured about 8.5 MiB in all) and Node's
 * stream buffers, but never the stream.
 */
const IN_FLIGHT_BOUND = 32 * 1024 ** 2
/** The stream's length, far above the bound; the upstream makes each chunk only when the last one was written. */
const STREAM_BYTES = 8 * IN_FLIGHT_BOUND
/** How long the upstream's write must stay unanswered, its byte count still, to count as held back. */
const STALL_MS = 200

export const LIFECYCLE: Scenario[] = [
  {
    name: 'a client that disconnects mid-stream: record aborted with the usage known so far; the upstream is let go',
    async run(rig) {
      const url = await rig.gateway()
      const events = anthropicStream({
        start: {
          input_tokens: 1200,
          cache_creation_input_tokens: 300,
          cache_read_input_tokens: 5000,
          output_tokens: 1,
        },
        delta: TRUE_ANTHROPIC,
        texts: ['one', 'two', 'three'],
      })
      const held = rig.gate()
      const deltaAt = events.findIndex((c) => c.startsWith('event: message_delta'))
      rig.upstream.reply = () => ({
        headers: SSE_HEADERS,
        chunks: events,
        before: (i) => (i === deltaAt ? held.promise : undefined),
        keepOpen: true,
      })
      const id = rig.id()
      const stream = await openStream(`${url}/v1/messages`, post(id, { stream: true }))
      await stream.until((t) => (t.match(/event: content_block_delta/g) ?? []).length === 3, 'three text deltas')
      expect(rig.upstream.progress(id)?.waitingBefore).toBe(deltaAt)
      stream.abort()

      const record = await rig.record(id)
      expect(record).toMatchObject({
        route: '/v1/messages',
        status: 'aborted',
        httpStatus: 200,
        dialect: 'anthropic-messages',
        model: ANTHROPIC_MODEL,
        final: false,
      })
      expect(record.usage).toEqual({ input: 1200, cacheRead: 5000, cacheWrite: 300, output: 1, reasoning: 0 })
      expect(record.timing.firstByteMs).not.toBeNull()
      await waitFor(
        () => rig.upstream.progress(id)?.closedEarly,
        "the upstream's response to be closed after the client left",
      )
      expect(rig.records.filter((r) => r.id === id)).toHaveLength(1)
    },
  },
  {
    name: 'a client that stops reading: the upstream is held back (bounded bytes in flight) and resumes on drain',
    async run(rig) {
      const url = await rig.gateway()
      const [start, blockStart] = anthropicStream({ start: { input_tokens: 10, output_tokens: 1 }, delta: {} })
      function* long(): Generator<string> {
        yield start!
        yield blockStart!
        for (let sent = 0; sent < STREAM_BYTES; sent += BIG_DELTA.length) yield BIG_DELTA
      }
      rig.upstream.reply = () => ({ headers: SSE_HEADERS, chunks: long() })
      const id = rig.id()
      const { method, headers, body } = post(id, { stream: true })
      let received = 0
      const req = http.request(`${url}/v1/messages`, { method, headers, agent: false })
      try {
        const res = await within(
          new Promise<http.IncomingMessage>((resolve, reject) => {
            req.on('response', resolve)
            req.on('error', reject)
            req.end(body)
          }),
          5_000,
          'no response head (held back by the gateway?)',
        )
        res.on('data', (d: Buffer) => (received += d.length))
        await waitFor(() => received > 0, 'the first bytes')
        res.pause() // from here the client reads nothing

        // The upstream ends up in a write Node does not call back, and stays there.
        let last = -1
        let stableSince = Date.now()
        await waitFor(
          () => {
            const p = rig.upstream.progress(id)!
            if (p.bytes > IN_FLIGHT_BOUND || p.ended) {
              throw new Error(
                `the gateway kept reading: the upstream wrote ${p.bytes} bytes while the client read none`,
              )
            }
            if (p.bytes !== last || !p.writing) {
              last = p.bytes
              stableSince = Date.now()
            }
            return Date.now() - stableSince > STALL_MS
          },
          'the upstream to be held back by the stalled client',
          { timeoutMs: 10_000, intervalMs: 5 },
        )
        const stalledAt = rig.upstream.progress(id)!.bytes
        expect(stalledAt).toBeLessThan(IN_FLIGHT_BOUND)

        // The client reads again: the gateway drains, and the upstream moves on past where it stopped.
        res.resume()
        await waitFor(
          () => rig.upstream.progress(id)!.bytes > stalledAt + 1024 ** 2,
          'the upstream to resume once the client reads again (the gateway waits for drain and then goes on)',
        )
      } finally {
        req.destroy()
      }
      expect((await rig.record(id)).status).toBe('aborted')
      await waitFor(
        () => rig.upstream.progress(id)?.closedEarly,
        "the upstream's response to be closed after the client left",
      )
    },
  },
]

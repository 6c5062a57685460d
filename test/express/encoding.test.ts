/**
 * Compressed upstreams through Express + usagewire + http-proxy-middleware (docs/peer-bugs.md rows 47, 48):
 * usage is read and fixed inside gzip/br bodies, and whatever the gateway sends decodes per the
 * Content-Encoding it declares.
 */
import { describe, expect, it } from 'vitest'
import {
  ANTHROPIC_MODEL,
  anthropicStream,
  CHAT_MODEL,
  chatCompletion,
  decodeBody,
  JSON_HEADERS,
  parseSse,
  rawRequest,
  SSE_HEADERS,
  useRig,
  anthropicClient,
  openaiClient,
  anthropicRequest,
  chatRequest,
} from './helpers.js'

const rig = useRig()

/** message_delta writes 0 over true message_start values: fixed only if usagewire read the decoded stream. */
const zeroingStream = () =>
  anthropicStream({
    start: { input_tokens: 1200, cache_creation_input_tokens: 300, cache_read_input_tokens: 5000, output_tokens: 1 },
    delta: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 42 },
  })
const TRUE_USAGE = {
  input_tokens: 1200,
  cache_creation_input_tokens: 300,
  cache_read_input_tokens: 5000,
  output_tokens: 42,
}
const TRUE_RECORD = { input: 1200, cacheRead: 5000, cacheWrite: 300, output: 42, reasoning: 0 }

describe.each(['gzip', 'br'] as const)('%s-encoded upstream', (encoding) => {
  it(`SSE flushed per event: fetch and the Anthropic SDK get the fixed usage`, async () => {
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, encoding, chunks: zeroingStream() })

    // fetch (decodes whatever Content-Encoding the gateway declares)
    const res = await fetch(`${rig.gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' },
      body: JSON.stringify({ ...anthropicRequest, stream: true }),
    })
    expect(res.status).toBe(200)
    const events = parseSse(await res.text())
    expect(events.map((e) => e.name)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ])
    const delta = JSON.parse(events.find((e) => e.name === 'message_delta')!.data)
    expect(delta.usage).toEqual(TRUE_USAGE)

    const record = await rig.gateway.record()
    expect(record.status).toBe('complete')
    expect(record.passthrough).toBeUndefined()
    expect(record.usage).toEqual(TRUE_RECORD)
    expect(record.corrections).toHaveLength(3)

    // The Anthropic SDK
    const message = await anthropicClient(rig.gateway.url).messages.stream(anthropicRequest).finalMessage()
    expect(message.usage).toMatchObject(TRUE_USAGE)
    expect(message.content.map((b) => (b.type === 'text' ? b.text : ''))).toEqual(['Hello, wörld ✓'])
    expect((await rig.gateway.record(2)).usage).toEqual(TRUE_RECORD)
  })

  it(`SSE: the bytes the gateway sends decode per the Content-Encoding it declares`, async () => {
    rig.upstream.reply = () => ({ headers: SSE_HEADERS, encoding, chunks: zeroingStream() })
    const raw = await rawRequest(`${rig.gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' },
      body: JSON.stringify({ ...anthropicRequest, stream: true }),
    })
    expect(raw.status).toBe(200)
    if (raw.headers['content-length'] !== undefined) expect(raw.headers['content-length']).toBe(String(raw.body.length))
    const events = parseSse(decodeBody(raw).toString('utf8'))
    expect(events).toHaveLength(8)
    expect(JSON.parse(events.find((e) => e.name === 'message_delta')!.data).usage).toEqual(TRUE_USAGE)
  })

  it(`JSON body: fixed usage, a Content-Length that matches the bytes sent, and the SDK parses it`, async () => {
    rig.upstream.reply = () => ({
      headers: JSON_HEADERS,
      encoding,
      body: JSON.stringify(
        chatCompletion({
          prompt_tokens: 200,
          completion_tokens: 50,
          total_tokens: 5250,
          cache_read_input_tokens: 5000,
        }),
      ),
    })

    const raw = await rawRequest(`${rig.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, br' },
      body: JSON.stringify(chatRequest),
    })
    expect(raw.status).toBe(200)
    expect(raw.headers['content-length']).toBe(String(raw.body.length))
    const json = JSON.parse(decodeBody(raw).toString('utf8'))
    expect(json.usage).toMatchObject({
      prompt_tokens: 5200,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })

    const completion = await openaiClient(rig.gateway.url).chat.completions.create(chatRequest)
    expect(completion.usage).toMatchObject({
      prompt_tokens: 5200,
      total_tokens: 5250,
      prompt_tokens_details: { cached_tokens: 5000 },
    })
    expect(completion.choices[0]?.message.content).toBe('Héllo ✓')

    const record = await rig.gateway.record()
    expect(record.status).toBe('complete')
    expect(record.usage).toEqual({ input: 200, cacheRead: 5000, cacheWrite: 0, output: 50, reasoning: 0 })
  })
})

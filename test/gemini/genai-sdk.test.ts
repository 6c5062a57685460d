/**
 * The official @google/genai SDK through Express + usagewire + http-proxy-middleware, in front of a local
 * mock Gemini upstream (127.0.0.1) that sends the shapes docs/dialects/gemini.md describes: cumulative
 * `usageMetadata` on every chunk whose last snapshot dropped the cache count and carries a total that
 * leaves thoughts out (docs/peer-bugs.md rows 25, 40).
 */
import http from 'node:http'
import { GoogleGenAI } from '@google/genai'
import { describe, expect, it } from 'vitest'
import { createGate, JSON_HEADERS, useRig, waitFor } from '../express/helpers.js'

const MODEL = 'gemini-2.5-flash'
const SSE = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } as const

const rig = useRig()
const genai = (baseUrl: string) => new GoogleGenAI({ apiKey: 'x', httpOptions: { baseUrl } })

/** One `GenerateContentResponse` chunk as Gemini streams it. */
function chunk(text: string, usage: Record<string, unknown> | undefined, finish = false): Record<string, unknown> {
  return {
    candidates: [{ content: { parts: [{ text }], role: 'model' }, index: 0, ...(finish && { finishReason: 'STOP' }) }],
    ...(usage && { usageMetadata: usage }),
    modelVersion: MODEL,
    responseId: 'Xo3aaM7tKcmz1dkP5uPBqQs',
  }
}

/** Prompt 1000 of which 800 cached; 30 thoughts; candidates 4 → 12 → 20. The last snapshot has no cache count and a total without thoughts. */
const CHUNKS = [
  chunk('Hel', {
    promptTokenCount: 1000,
    cachedContentTokenCount: 800,
    candidatesTokenCount: 4,
    thoughtsTokenCount: 30,
    totalTokenCount: 1034,
  }),
  chunk('lo, ', {
    promptTokenCount: 1000,
    cachedContentTokenCount: 800,
    candidatesTokenCount: 12,
    thoughtsTokenCount: 30,
    totalTokenCount: 1042,
  }),
  chunk(
    'wörld ✓',
    { promptTokenCount: 1000, candidatesTokenCount: 20, thoughtsTokenCount: 30, totalTokenCount: 1020 },
    true,
  ),
]

describe('@google/genai generateContentStream through the Express gateway', () => {
  it('the SDK hands the application a last usageMetadata with the cache and a total that adds up; the record is exact', async () => {
    rig.upstream.reply = () => ({ headers: SSE, chunks: CHUNKS.map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`) })

    const stream = await genai(rig.gateway.url).models.generateContentStream({ model: MODEL, contents: 'hi' })
    const chunks = []
    for await (const c of stream) chunks.push(c)

    expect(chunks.map((c) => c.text).join('')).toBe('Hello, wörld ✓')
    expect(rig.upstream.requests[0]!.url).toBe(`/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`)
    // What an application reads: the last chunk's usage, complete and self-consistent.
    expect(chunks.at(-1)!.usageMetadata).toEqual({
      promptTokenCount: 1000,
      candidatesTokenCount: 20,
      thoughtsTokenCount: 30,
      totalTokenCount: 1050,
      cachedContentTokenCount: 800,
    })
    // Earlier snapshots were already consistent: they reach the SDK as the upstream sent them.
    expect(chunks[1]!.usageMetadata).toEqual(CHUNKS[1]!.usageMetadata)

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'gemini',
      model: MODEL,
      status: 'complete',
      streaming: true,
      final: true,
      usage: { input: 200, cacheRead: 800, cacheWrite: 0, output: 50, reasoning: 30 },
      sources: {
        input: 'chunk.usageMetadata.promptTokenCount',
        cacheRead: 'chunk.usageMetadata.cachedContentTokenCount',
        output: 'chunk.usageMetadata.candidatesTokenCount',
        reasoning: 'chunk.usageMetadata.thoughtsTokenCount',
      },
    })
    expect(record.corrections.map((c) => [c.field, c.from, c.to])).toEqual([
      ['usageMetadata.totalTokenCount', 1020, 1050],
      ['usageMetadata.cachedContentTokenCount', null, 800],
    ])
  })

  it('generateContent: a whole body whose total leaves thoughts out reaches the SDK corrected', async () => {
    const body = chunk(
      'Hi ✓',
      { promptTokenCount: 9, candidatesTokenCount: 23, thoughtsTokenCount: 185, totalTokenCount: 32 },
      true,
    )
    rig.upstream.reply = () => ({ headers: JSON_HEADERS, body: JSON.stringify(body) })

    const response = await genai(rig.gateway.url).models.generateContent({ model: MODEL, contents: 'hi' })

    expect(response.text).toBe('Hi ✓')
    expect(response.usageMetadata).toEqual({
      promptTokenCount: 9,
      candidatesTokenCount: 23,
      thoughtsTokenCount: 185,
      totalTokenCount: 217,
    })
    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'gemini',
      streaming: false,
      status: 'complete',
      usage: { input: 9, output: 208, reasoning: 185 },
    })
  })
})

describe('streamGenerateContent without alt=sse (a JSON array sent over time) through the Express gateway', () => {
  it('each element reaches the client as soon as it is whole, before the array ends; the last snapshot is completed', async () => {
    const gate = createGate()
    const elements = CHUNKS.map((c) => JSON.stringify(c))
    rig.upstream.reply = () => ({
      headers: JSON_HEADERS,
      chunks: [`[${elements[0]}`, `\r\n,${elements[1]}`, `\r\n,${elements[2]}`, '\r\n]'],
      holdBefore: 2,
      hold: gate.promise,
    })

    const received: Buffer[] = []
    const done = new Promise<{ headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request(
        `${rig.gateway.url}/v1beta/models/${MODEL}:streamGenerateContent`,
        { method: 'POST', agent: false },
        (res) => {
          res.on('data', (part: Buffer) => received.push(part))
          res.on('end', () => resolve({ headers: res.headers }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end('{}')
    })
    // The upstream holds back the last element: the first two have already reached the client.
    await waitFor(() => rig.upstream.progress.holding, 'the upstream to hold')
    await waitFor(
      () => Buffer.concat(received).toString() === `[${elements[0]}\r\n,${elements[1]}`,
      'two elements at the client',
    )
    gate.open()
    const { headers } = await done

    expect(headers['content-length']).toBeUndefined()
    const array = JSON.parse(Buffer.concat(received).toString()) as Array<{ usageMetadata: Record<string, number> }>
    expect(array).toHaveLength(3)
    expect(array[2]!.usageMetadata).toMatchObject({ cachedContentTokenCount: 800, totalTokenCount: 1050 })
    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'gemini',
      streaming: true,
      status: 'complete',
      usage: { input: 200, cacheRead: 800, output: 50 },
    })
  })
})

import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { matchRoute, routeOf } from '../../routes.js'
import { inspect } from '../../testing/inspect.js'
import { freshState, fromGeminiUsage, toGeminiUsage } from './usage.js'

describe('Gemini usageMetadata → canonical buckets', () => {
  it('takes the cache out of the inclusive prompt and adds thoughts to output', () => {
    const { usage, sources } = fromGeminiUsage(
      { promptTokenCount: 2048, cachedContentTokenCount: 1536, candidatesTokenCount: 12, thoughtsTokenCount: 96 },
      'body.usageMetadata',
    )
    expect(usage).toEqual({ input: 512, cacheRead: 1536, output: 108, reasoning: 96 })
    expect(sources.input).toBe('body.usageMetadata.promptTokenCount')
    expect(sources.reasoning).toBe('body.usageMetadata.thoughtsTokenCount')
  })

  it('counts the tool-use prompt as input, as the total does', () => {
    const { usage } = fromGeminiUsage(
      { promptTokenCount: 100, toolUsePromptTokenCount: 40, candidatesTokenCount: 10, totalTokenCount: 150 },
      'x',
    )
    expect(usage).toEqual({ input: 140, output: 10 })
  })

  it('subtracts nothing when the cache exceeds the prompt (a prompt count without the cache)', () => {
    expect(fromGeminiUsage({ promptTokenCount: 12, cachedContentTokenCount: 5000 }, 'x').usage).toEqual({
      input: 12,
      cacheRead: 5000,
    })
  })

  it('counts thoughts as output while candidates are still absent, and keeps them when a later snapshot omits them', () => {
    const state = freshState()
    expect(fromGeminiUsage({ promptTokenCount: 9, thoughtsTokenCount: 185 }, 'x', state).usage).toEqual({
      input: 9,
      output: 185,
      reasoning: 185,
    })
    expect(fromGeminiUsage({ promptTokenCount: 9, candidatesTokenCount: 23 }, 'x', state).usage).toEqual({
      input: 9,
      output: 208,
    })
  })

  it('reads nothing from an empty block and ignores counts that are not counts', () => {
    expect(fromGeminiUsage({}, 'x').usage).toEqual({})
    expect(fromGeminiUsage({ promptTokenCount: -1, candidatesTokenCount: '4' }, 'x').usage).toEqual({})
  })
})

describe('canonical buckets → Gemini usageMetadata', () => {
  it('writes a block that agrees with itself, keeping every other member and its order', () => {
    const native = {
      promptTokenCount: 2048,
      candidatesTokenCount: 12,
      totalTokenCount: 2060,
      promptTokensDetails: [{ modality: 'TEXT', tokenCount: 2048 }],
      thoughtsTokenCount: 96,
    }
    const out = toGeminiUsage(native, { input: 512, cacheRead: 1536, output: 108, reasoning: 96 })
    expect(Object.keys(out)).toEqual([...Object.keys(native), 'cachedContentTokenCount'])
    expect(out).toEqual({ ...native, totalTokenCount: 2156, cachedContentTokenCount: 1536 })
  })

  it('never writes an unknown value, and adds no zero to a block that omits it', () => {
    expect(toGeminiUsage({ promptTokenCount: 9 }, { input: 9, cacheRead: 0, reasoning: 0 })).toEqual({
      promptTokenCount: 9,
    })
    expect(toGeminiUsage({ promptTokenCount: 9, cachedContentTokenCount: 3 }, { input: 9, cacheRead: 0 })).toEqual({
      promptTokenCount: 9,
      cachedContentTokenCount: 0,
    })
  })

  it('keeps the tool-use prompt outside promptTokenCount and inside the total', () => {
    const out = toGeminiUsage({ promptTokenCount: 1, toolUsePromptTokenCount: 40 }, { input: 140, output: 10 })
    expect(out).toEqual({
      promptTokenCount: 100,
      toolUsePromptTokenCount: 40,
      candidatesTokenCount: 10,
      totalTokenCount: 150,
    })
  })
})

// ---- through the processor: routes, framing and what the client receives --------------------------------

const chunk = (usage: Record<string, number> | undefined, finish = false): Record<string, unknown> => ({
  candidates: [
    { content: { parts: [{ text: 'x' }], role: 'model' }, index: 0, ...(finish && { finishReason: 'STOP' }) },
  ],
  ...(usage && { usageMetadata: usage }),
  modelVersion: 'gemini-2.5-flash',
})
const sse = (chunks: unknown[]): string => chunks.map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`).join('')
const lastUsage = (text: string): unknown => {
  const events = text.split('\r\n\r\n').filter(Boolean)
  return JSON.parse(events[events.length - 1]!.slice('data: '.length)).usageMetadata
}

describe('the Gemini dialect through the processor', () => {
  const path = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'

  it('writes a cache the final snapshot dropped back into it, and corrects its total', () => {
    const body = sse([
      chunk({ promptTokenCount: 1000, cachedContentTokenCount: 800, candidatesTokenCount: 5, totalTokenCount: 1005 }),
      chunk({ promptTokenCount: 1000, candidatesTokenCount: 20, thoughtsTokenCount: 30, totalTokenCount: 1020 }, true),
    ])
    const { record, output } = inspect(body, { path, contentType: 'text/event-stream' })
    expect(record.usage).toEqual({ input: 200, cacheRead: 800, cacheWrite: 0, output: 50, reasoning: 30 })
    expect(record.status).toBe('complete')
    expect(lastUsage(output.toString())).toEqual({
      promptTokenCount: 1000,
      candidatesTokenCount: 20,
      thoughtsTokenCount: 30,
      totalTokenCount: 1050,
      cachedContentTokenCount: 800,
    })
    expect(record.corrections).toEqual([
      { where: expect.stringMatching(/^chunk@/), field: 'usageMetadata.totalTokenCount', from: 1020, to: 1050 },
      { where: expect.stringMatching(/^chunk@/), field: 'usageMetadata.cachedContentTokenCount', from: null, to: 800 },
    ])
  })

  it('drops the cache when the final snapshot states another prompt total without one', () => {
    const body = sse([
      chunk({ promptTokenCount: 1000, cachedContentTokenCount: 800, candidatesTokenCount: 5, totalTokenCount: 1005 }),
      chunk({ promptTokenCount: 1200, candidatesTokenCount: 9, totalTokenCount: 1209 }, true),
    ])
    const { record, output } = inspect(body, { path, contentType: 'text/event-stream' })
    expect(record.usage).toMatchObject({ input: 1200, cacheRead: 0, output: 9 })
    expect(record.sources.cacheRead).toBe('unknown')
    expect(lastUsage(output.toString())).toEqual({
      promptTokenCount: 1200,
      candidatesTokenCount: 9,
      totalTokenCount: 1209,
    })
  })

  it('a stream without a finish reason is incomplete and not final', () => {
    const body = sse([chunk({ promptTokenCount: 9, candidatesTokenCount: 5, totalTokenCount: 14 })])
    const { record } = inspect(body, { path, contentType: 'text/event-stream' })
    expect(record).toMatchObject({ status: 'incomplete', final: false, usage: { input: 9, output: 5 } })
  })

  it('notices a finish chunk without usage from its bytes', () => {
    const body = sse([
      chunk({ promptTokenCount: 9, candidatesTokenCount: 5, totalTokenCount: 14 }),
      chunk(undefined, true),
    ])
    const { record } = inspect(body, { path, contentType: 'text/event-stream' })
    expect(record).toMatchObject({ status: 'complete', final: true })
  })

  it('a malformed element turns the rest of a JSON-array stream into passthrough, byte for byte', () => {
    const body =
      '[{"usageMetadata":{"promptTokenCount":1,}},\r\n{"usageMetadata":{"promptTokenCount":2,"totalTokenCount":9}}]'
    for (const chunks of [undefined, [3], [17]]) {
      const { record, output } = inspect(body, {
        path: '/v1beta/models/m:streamGenerateContent',
        contentType: 'application/json',
        ...(chunks && { chunks }),
      })
      expect(output.toString()).toBe(body)
      expect(record).toMatchObject({ status: 'passthrough', passthrough: { atByte: 1 } })
    }
  })

  it('reads application/json as a JSON-array stream only on the stream route', () => {
    const array = `[${JSON.stringify(chunk({ promptTokenCount: 9, candidatesTokenCount: 5, totalTokenCount: 3 }, true))}]`
    const streamed = inspect(array, { path: '/v1beta/models/m:streamGenerateContent', contentType: 'application/json' })
    expect(streamed.record).toMatchObject({
      dialect: 'gemini',
      streaming: true,
      status: 'complete',
      usage: { input: 9 },
    })
    expect(JSON.parse(streamed.output.toString())[0].usageMetadata.totalTokenCount).toBe(14)
    // The same bytes on the whole-body route (or any other) are one JSON document: an array, not a response.
    const whole = inspect(array, { path: '/v1beta/models/m:generateContent', contentType: 'application/json' })
    expect(whole.record).toMatchObject({ streaming: false, sources: { input: 'unknown' } })
    expect(whole.output.toString()).toBe(array)
    const chat = inspect(array, { path: '/v1/chat/completions', contentType: 'application/json' })
    expect(chat.record.streaming).toBe(false)
  })
})

// ---- the fixtures' wire, which the corpus's checks (written for `"usage"` blocks) do not see --------

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** The body with every `usageMetadata` object blanked: what must stay byte for byte. */
const blank = (text: string): string =>
  text.replace(/"usageMetadata":\s*\{[^{}]*(?:\[[^\]]*\][^{}]*)*\}/g, '"usageMetadata":<>')

/** Every usageMetadata object in a body, in order. */
const blocks = (text: string): Record<string, number>[] =>
  [...text.matchAll(/"usageMetadata":\s*(\{[^{}]*(?:\[[^\]]*\][^{}]*)*\})/g)].map((m) => JSON.parse(m[1]!))

describe('Gemini fixtures on the wire', () => {
  for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.expect.json'))) {
    const name = file.slice(0, -'.expect.json'.length)
    it(`${name}: only usageMetadata changes, and every block written agrees with itself`, () => {
      const expectation = JSON.parse(readFileSync(FIXTURES + file, 'utf8')) as {
        path: string
        contentType: string
        httpStatus?: number
      }
      const bodyFile = readdirSync(FIXTURES).find((f) => f.startsWith(`${name}.`) && f !== file)!
      const input = readFileSync(FIXTURES + bodyFile, 'utf8')
      const { output } = inspect(input, expectation)
      const text = output.toString()
      expect(blank(text)).toBe(blank(input))
      expect(blocks(text).length > 0 || name === 'gemini-http-429').toBe(true)
      for (const usage of blocks(text)) {
        if (usage.totalTokenCount === undefined) continue
        const parts = ['promptTokenCount', 'candidatesTokenCount', 'thoughtsTokenCount', 'toolUsePromptTokenCount']
        expect(
          parts.reduce((n, k) => n + (usage[k] ?? 0), 0),
          JSON.stringify(usage),
        ).toBe(usage.totalTokenCount)
        expect(usage.cachedContentTokenCount ?? 0).toBeLessThanOrEqual(usage.promptTokenCount ?? 0)
      }
    })
  }

  it('the JSON-array fixture ends with the cache written back into its last snapshot', () => {
    const input = readFileSync(`${FIXTURES}gemini-json-array-stream.json`, 'utf8')
    const { output } = inspect(input, {
      path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent',
      contentType: 'application/json',
    })
    const last = (JSON.parse(output.toString()) as { usageMetadata: Record<string, number> }[]).at(-1)!.usageMetadata
    expect(last).toMatchObject({
      promptTokenCount: 4000,
      cachedContentTokenCount: 3200,
      candidatesTokenCount: 18,
      totalTokenCount: 4018,
    })
  })
})

describe('default routes', () => {
  it.each([
    ['/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', 'gemini'],
    ['/v1beta/models/gemini-2.5-flash:generateContent', 'gemini'],
    [
      '/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent',
      'gemini',
    ],
    [
      '/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict',
      'anthropic-messages',
    ],
    [
      '/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict',
      'anthropic-messages',
    ],
  ])('%s is read as %s', (path, dialect) => {
    expect(matchRoute(routeOf(path))?.dialect?.id).toBe(dialect)
  })

  it('a Vertex :rawPredict body of another dialect is recognised as such', () => {
    const chat = {
      object: 'chat.completion',
      model: 'mistral-small',
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    }
    const { record } = inspect(JSON.stringify(chat), {
      path: '/v1/projects/p/locations/us-central1/publishers/mistralai/models/mistral-small-2503:rawPredict',
      contentType: 'application/json',
    })
    expect(record).toMatchObject({ dialect: 'openai-chat', usage: { input: 5, output: 2 } })
  })
})

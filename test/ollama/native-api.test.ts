/**
 * Ollama's native API through Express + usagewire + http-proxy-middleware, in front of a local mock
 * Ollama (127.0.0.1) that streams `application/x-ndjson` as docs/dialects/ollama.md describes. The client
 * reads the body with `fetch` line by line, as an application does.
 */
import { describe, expect, it } from 'vitest'
import { createGate, JSON_HEADERS, useRig, waitFor } from '../express/helpers.js'

const MODEL = 'llama3.2'
const NDJSON = { 'content-type': 'application/x-ndjson' } as const

const rig = useRig()

/** One streamed `/api/chat` line as the Go encoder writes it (`<` escaped as `\u003c`). */
const part = (content: string) =>
  `{"model":"${MODEL}","created_at":"2026-09-17T15:42:59.5670387Z","message":{"role":"assistant","content":"${content}"},"done":false}\n`
const DONE = `{"model":"${MODEL}","created_at":"2026-09-17T15:42:59.7420965Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":30258609300,"load_duration":19906358300,"prompt_eval_count":40,"prompt_eval_cached_count":32,"prompt_eval_duration":10175903,"eval_count":3,"eval_duration":173639000}\n`
const LINES = [part('Hel'), part('lo \\u003cwörld\\u003e ✓'), DONE]

/** Reads an NDJSON body line by line; `lines` grows as each LF arrives. */
async function readLines(response: Response, lines: Array<Record<string, unknown>>): Promise<string> {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let raw = ''
  let pending = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    const text = decoder.decode(value, { stream: true })
    raw += text
    pending += text
    let nl: number
    while ((nl = pending.indexOf('\n')) !== -1) {
      lines.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>)
      pending = pending.slice(nl + 1)
    }
  }
  return raw
}

describe('Ollama /api/chat streamed as NDJSON through the Express gateway', () => {
  it('lines reach the client before the stream ends, byte for byte; the client reads the counts; the record is exact', async () => {
    const gate = createGate()
    rig.upstream.reply = () => ({ headers: NDJSON, chunks: LINES, holdBefore: 2, hold: gate.promise })

    const response = await fetch(`${rig.gateway.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(response.headers.get('content-type')).toBe('application/x-ndjson')
    const lines: Array<Record<string, unknown>> = []
    const body = readLines(response, lines)

    // The upstream holds the done line back: the two text lines have already reached the client.
    await waitFor(() => rig.upstream.progress.holding, 'the upstream to hold')
    await waitFor(() => lines.length === 2, 'two lines at the client')
    expect(lines.map((l) => l.done)).toEqual([false, false])
    gate.open()
    const raw = await body

    expect(raw).toBe(LINES.join(''))
    expect(lines.map((l) => (l.message as { content: string }).content).join('')).toBe('Hello <wörld> ✓')
    const last = lines.at(-1)!
    expect(last).toMatchObject({ done: true, prompt_eval_count: 40, prompt_eval_cached_count: 32, eval_count: 3 })

    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'ollama',
      model: MODEL,
      status: 'complete',
      streaming: true,
      final: true,
      usage: { input: 8, cacheRead: 32, cacheWrite: 0, output: 3, reasoning: 0 },
      sources: {
        input: 'done.prompt_eval_count',
        cacheRead: 'done.prompt_eval_cached_count',
        output: 'done.eval_count',
      },
      corrections: [],
    })
  })

  it('"stream": false on /api/generate: one JSON body, counts read, body as it came', async () => {
    const body = `{"model":"${MODEL}","created_at":"2026-09-17T15:42:59Z","response":"Blue.","done":true,"done_reason":"stop","context":[1,2],"total_duration":5043500667,"prompt_eval_count":26,"prompt_eval_duration":325953000,"eval_count":2,"eval_duration":4709213000}`
    rig.upstream.reply = () => ({ headers: JSON_HEADERS, body })

    const response = await fetch(`${rig.gateway.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, prompt: 'sky?', stream: false }),
    })
    expect(await response.text()).toBe(body)
    const record = await rig.gateway.record()
    expect(record).toMatchObject({
      dialect: 'ollama',
      streaming: false,
      status: 'complete',
      final: true,
      usage: { input: 26, output: 2 },
    })
  })
})

/**
 * The four example gateways (examples/<framework>-gateway, started through examples/gateways.ts as
 * `pnpm demo` and `pnpm start` start them) against the embedded mock upstream: every scenario, through
 * the official SDK of its dialect (Bedrock: @aws-sdk/client-bedrock-runtime; Gemini: @google/genai), reaches
 * the application and the record with its true usage.
 */
import type { UsageRecord } from '@usagewire/core'
import { InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bedrockClient, bedrockRequest, genaiClient, send, type ClientKind } from '../examples/clients.js'
import { canonicalFromClient } from '../examples/format.js'
import { upstreamsFromEnv } from '../examples/gateway-options.js'
import { ADAPTERS, startGateway, type RunningGateway } from '../examples/gateways.js'
import { scenarios, startMockUpstream, type MockUpstream } from '../examples/mock-upstream/index.js'
import { JSON_HEADERS, startUpstream, waitFor } from './matrix/upstream.js'

const CLIENT: Record<string, ClientKind> = {
  'anthropic-messages': 'anthropic',
  'openai-chat': 'openai-chat',
  'openai-responses': 'openai-responses',
  'bedrock-invoke': 'bedrock',
  gemini: 'gemini',
}

const truthOf = (name: string, dialect: string) => {
  const { input, cacheRead, cacheWrite, output, reasoning } = scenarios.find(
    (s) => s.name === name && s.dialect === dialect,
  )!.truth
  return { input, cacheRead, cacheWrite, output, reasoning }
}

let mock: MockUpstream
beforeAll(async () => {
  mock = await startMockUpstream()
})
afterAll(() => mock.close())

describe.each(ADAPTERS)('examples: the %s gateway', (adapter) => {
  let gateway: RunningGateway
  const records: UsageRecord[] = []
  const warnings: string[] = []
  beforeAll(async () => {
    const log = { info: () => {}, warn: (message: string) => warnings.push(message), error: () => {} }
    gateway = await startGateway(adapter, { upstream: mock.url, onUsage: (r) => records.push(r), log })
  })
  afterAll(() => gateway.close())

  it.each(scenarios.map((s) => [s.dialect, s.name] as const))(
    '%s %s: the SDK and the record get the true usage',
    async (dialect, name) => {
      const before = records.length
      const usage = await send({ kind: CLIENT[dialect]!, baseURL: gateway.url, model: name, headers: {} })
      expect(canonicalFromClient(dialect, usage)).toEqual(truthOf(name, dialect))
      const record = await waitFor(() => records[before], `the record of ${name}`)
      expect(record).toMatchObject({ dialect, status: 'complete', final: true, streaming: true })
      expect(record.usage).toMatchObject(truthOf(name, dialect))
    },
  )

  it('a gzip upstream is decoded and rewritten on its way through', async () => {
    const before = records.length
    const usage = await send({
      kind: 'anthropic',
      baseURL: gateway.url,
      model: 'anthropic-delta-zeros',
      headers: { 'x-mock-gzip': '1' },
    })
    expect(canonicalFromClient('anthropic-messages', usage)).toEqual(
      truthOf('anthropic-delta-zeros', 'anthropic-messages'),
    )
    expect(await waitFor(() => records[before], 'the record')).toMatchObject({ status: 'complete' })
  })

  it('Bedrock InvokeModel: the JSON body reaches the SDK with the true usage, recorded as an Anthropic message', async () => {
    const before = records.length
    const response = await bedrockClient(gateway.url).send(new InvokeModelCommand(bedrockRequest('bedrock-zero-start')))
    const message = JSON.parse(Buffer.from(response.body).toString('utf8')) as { usage: unknown }
    const truth = truthOf('bedrock-zero-start', 'bedrock-invoke')
    expect(canonicalFromClient('bedrock-invoke', message.usage)).toEqual(truth)
    const record = await waitFor(() => records[before], 'the record of InvokeModel')
    expect(record).toMatchObject({ dialect: 'anthropic-messages', status: 'complete', streaming: false, usage: truth })
  })

  it('Gemini generateContent: the JSON body reaches the SDK and the record with the true usage', async () => {
    const before = records.length
    const response = await genaiClient(gateway.url).models.generateContent({ model: 'healthy', contents: 'hi' })
    const truth = truthOf('healthy', 'gemini')
    expect(canonicalFromClient('gemini', response.usageMetadata)).toEqual(truth)
    const record = await waitFor(() => records[before], 'the record of generateContent')
    expect(record).toMatchObject({ dialect: 'gemini', status: 'complete', streaming: false, usage: truth })
  })

  it('Gemini streamGenerateContent without alt=sse (a JSON array over time) is read and rewritten too', async () => {
    const before = records.length
    const res = await fetch(`${gateway.url}/v1beta/models/gemini-last-drops-cache:streamGenerateContent`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    })
    const chunks = (await res.json()) as Array<{ usageMetadata?: unknown }>
    const truth = truthOf('gemini-last-drops-cache', 'gemini')
    expect(canonicalFromClient('gemini', chunks.at(-1)!.usageMetadata)).toEqual(truth)
    const record = await waitFor(() => records[before], 'the record of the array stream')
    expect(record).toMatchObject({ dialect: 'gemini', status: 'complete', final: true, usage: truth })
  })

  it('ANTHROPIC_UPSTREAM and OPENAI_UPSTREAM each get their routes, with paths forwarded as they came', async () => {
    const [anthropic, openai, fallback] = await Promise.all([startUpstream(), startUpstream(), startUpstream()])
    for (const [upstream, name] of [
      [anthropic, 'anthropic'],
      [openai, 'openai'],
      [fallback, 'fallback'],
    ] as const) {
      upstream.reply = () => ({ headers: JSON_HEADERS, body: JSON.stringify({ upstream: name }) })
    }
    const routed = await startGateway(adapter, {
      upstream: fallback.url,
      ...upstreamsFromEnv({ ANTHROPIC_UPSTREAM: anthropic.url, OPENAI_UPSTREAM: `${openai.url}/v1` }),
      onUsage: () => {},
    })
    try {
      const reached = async (path: string) => {
        const res = await fetch(`${routed.url}${path}`, { method: 'POST', headers: JSON_HEADERS, body: '{}' })
        return ((await res.json()) as { upstream: string }).upstream
      }
      expect(await reached('/v1/messages')).toBe('anthropic')
      expect(await reached('/v1/chat/completions')).toBe('openai')
      expect(await reached('/v1/responses?stream=false')).toBe('openai')
      expect(await reached('/v1/models')).toBe('fallback')
      expect(await reached('/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke')).toBe('fallback')
      expect(await reached('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse')).toBe('fallback')
      expect(openai.requests.map((r) => r.url)).toEqual(['/v1/chat/completions', '/v1/responses?stream=false'])
      expect(fallback.requests.map((r) => r.url)).toEqual([
        '/v1/models',
        '/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke',
        '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
      ])
    } finally {
      await routed.close()
      await Promise.all([anthropic.close(), openai.close(), fallback.close()])
    }
  })

  it('a path outside /v1, /v1beta and /model is answered 404, not left waiting', async () => {
    const res = await fetch(`${gateway.url}/health`)
    expect(res.status).toBe(404)
  })

  it('logs nothing for healthy traffic', () => {
    expect(warnings).toEqual([])
  })
})

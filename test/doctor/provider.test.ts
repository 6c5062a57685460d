/**
 * The doctor's provider answers every dialect honestly: each answer, read by usagewire's own dialects
 * (`inspect`), states exactly the scenario's truth in that dialect's convention; real SDKs (Bedrock Runtime,
 * Google GenAI) read it; markers choose scenarios; errors, the abort pause and the control plane behave.
 */
import { ConverseStreamCommand, InvokeModelWithResponseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspect } from '@usagewire/core/testing'
import {
  answer,
  DOCTOR_SCENARIOS,
  findMarker,
  marker,
  startDoctorProvider,
  statedTruth,
  type DoctorProvider,
  type ProviderDialect,
  type ScenarioName,
} from '@usagewire/doctor'
import { bedrockClient, genaiClient } from '../../examples/clients.js'

const DIALECTS: ProviderDialect[] = [
  'anthropic-messages',
  'openai-chat',
  'openai-responses',
  'bedrock-converse',
  'bedrock-invoke',
  'gemini',
]
const ANSWERED: ScenarioName[] = ['plain', 'cache-read', 'cache-write', 'reasoning', 'tool-call', 'abort']

const PATHS: Record<ProviderDialect, [stream: string, json: string]> = {
  'anthropic-messages': ['/v1/messages', '/v1/messages'],
  'openai-chat': ['/v1/chat/completions', '/v1/chat/completions'],
  'openai-responses': ['/v1/responses', '/v1/responses'],
  'bedrock-converse': ['/model/m/converse-stream', '/model/m/converse'],
  'bedrock-invoke': ['/model/m/invoke-with-response-stream', '/model/m/invoke'],
  gemini: ['/v1beta/models/g:streamGenerateContent', '/v1beta/models/g:generateContent'],
}

const ctx = { seq: 3, requestedModel: 'm', includeUsage: true, includeObfuscation: true, created: 1_755_800_000 }

describe('every answer states the truth, as usagewire reads it', () => {
  for (const dialect of DIALECTS)
    for (const scenario of ANSWERED)
      for (const streaming of [true, false]) {
        it(`${dialect} ${scenario} ${streaming ? 'streamed' : 'whole'}`, () => {
          const reply = answer(dialect, scenario, marker(scenario, 't1'), ctx, streaming, 'm')
          const body = Buffer.concat(reply.pieces.map((p) => Buffer.from(p)))
          const { record } = inspect(body, { path: PATHS[dialect][streaming ? 0 : 1], contentType: reply.contentType })
          const truth = statedTruth(dialect, DOCTOR_SCENARIOS[scenario].truth!)
          expect(reply.stated).toEqual(truth)
          expect(record.status).toBe('complete')
          expect(record.corrections).toEqual([])
          const { input, cacheRead, cacheWrite, output, reasoning } = record.usage
          expect({ input, cacheRead, cacheWrite, output }).toEqual({
            input: truth.input,
            cacheRead: truth.cacheRead,
            cacheWrite: truth.cacheWrite,
            output: truth.output,
          })
          // Converse states no reasoning count; every other dialect does.
          if (dialect !== 'bedrock-converse') expect(reasoning).toBe(truth.reasoning)
          if (truth.cacheWrite1h !== undefined && dialect !== 'bedrock-invoke') {
            expect(record.usage.cacheWrite5m).toBe(truth.cacheWrite5m)
            expect(record.usage.cacheWrite1h).toBe(truth.cacheWrite1h)
          }
          // The marker is echoed, so two requests in flight never get the same text.
          expect(body.toString('utf8').includes('usagewire-doctor') || dialect.startsWith('bedrock')).toBe(true)
        })
      }

  it('what each dialect can state: Gemini has no cache write, OpenAI no TTL split, Converse no reasoning count', () => {
    const write = DOCTOR_SCENARIOS['cache-write'].truth!
    expect(statedTruth('gemini', write)).toEqual({
      input: 318 + 4096,
      cacheRead: 0,
      cacheWrite: 0,
      output: 77,
      reasoning: 0,
    })
    expect(statedTruth('openai-chat', write)).toEqual({
      input: 318,
      cacheRead: 0,
      cacheWrite: 4096,
      output: 77,
      reasoning: 0,
    })
    expect(statedTruth('bedrock-converse', DOCTOR_SCENARIOS.reasoning.truth!).reasoning).toBe(0)
  })

  it('markers', () => {
    expect(marker('cache-read', 'b-anthropic-stream')).toBe('[usagewire-doctor:cache-read#b-anthropic-stream]')
    expect(findMarker('{"content":"Answer. [usagewire-doctor:abort#w-x]"}')).toEqual({ scenario: 'abort', tag: 'w-x' })
    expect(findMarker('[usagewire-doctor:nonsense#x]')).toBeUndefined()
    expect(findMarker('no marker')).toBeUndefined()
  })
})

describe('the provider over HTTP', () => {
  let provider: DoctorProvider
  beforeAll(async () => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    provider = await startDoctorProvider({ listen: '127.0.0.1:0', pauseMs: 3000 })
  })
  afterAll(() => provider.close())

  const post = (path: string, body: unknown) =>
    fetch(provider.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  it('the scenario comes from the marker in the prompt; the call is logged with what it stated', async () => {
    const res = await post('/v1/messages', {
      model: 'renamed-by-the-gateway',
      max_tokens: 10,
      messages: [{ role: 'user', content: `Hi ${marker('cache-read', 'http-1')}` }],
    })
    const body = (await res.json()) as {
      usage: Record<string, number>
      model: string
      content: Array<{ text: string }>
    }
    expect(body.usage).toMatchObject({ input_tokens: 212, cache_read_input_tokens: 30433, output_tokens: 104 })
    expect(body.model).toBe('renamed-by-the-gateway')
    expect(body.content[0]!.text).toContain('[usagewire-doctor:cache-read#http-1]')
    expect(provider.callsFor('http-1')).toMatchObject([
      {
        dialect: 'anthropic-messages',
        scenario: 'cache-read',
        streaming: false,
        status: 200,
        completed: true,
        callerLeft: false,
      },
    ])
  })

  it('a prompt without a marker gets the plain scenario', async () => {
    const res = await post('/v1/chat/completions', {
      model: 'x',
      messages: [{ role: 'user', content: 'health check' }],
    })
    expect(((await res.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens).toBe(1850)
  })

  it('the error scenario: a 400 JSON error in each dialect', async () => {
    const anthropic = await post('/v1/messages', {
      model: 'x',
      messages: [{ role: 'user', content: marker('error', 'e1') }],
    })
    expect(anthropic.status).toBe(400)
    expect(await anthropic.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } })
    const bedrock = await post('/model/x/converse', {
      messages: [{ role: 'user', content: [{ text: marker('error', 'e2') }] }],
    })
    expect(bedrock.status).toBe(400)
    expect(bedrock.headers.get('x-amzn-errortype')).toMatch(/^ValidationException/)
    const gemini = await post('/v1beta/models/g:generateContent', {
      contents: [{ parts: [{ text: marker('error', 'e3') }] }],
    })
    expect(((await gemini.json()) as { error: { status: string } }).error.status).toBe('INVALID_ARGUMENT')
  })

  it('the abort scenario waits part-way for the caller to leave, and logs that it left', async () => {
    const res = await post('/v1/chat/completions', {
      model: 'x',
      stream: true,
      messages: [{ role: 'user', content: marker('abort', 'a1') }],
    })
    const reader = res.body!.getReader()
    const started = performance.now()
    let text = ''
    // The first two text deltas ("The ", "usagewire ") come before the pause.
    while (!text.includes('"usagewire ')) {
      const part = await reader.read()
      if (part.done) break
      text += new TextDecoder().decode(part.value)
    }
    expect(text).toContain('"usagewire ')
    await reader.cancel()
    await new Promise((r) => setTimeout(r, 100))
    expect(performance.now() - started).toBeLessThan(1000)
    expect(provider.callsFor('a1')).toMatchObject([{ scenario: 'abort', completed: false, callerLeft: true }])
  })

  it('Bedrock: ConverseStream and InvokeModelWithResponseStream read by the AWS SDK', async () => {
    const client = bedrockClient(provider.url)
    const converse = await client.send(
      new ConverseStreamCommand({
        modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
        messages: [{ role: 'user', content: [{ text: `Hi ${marker('cache-write', 'aws-1')}` }] }],
      }),
    )
    let usage: unknown
    let text = ''
    for await (const event of converse.stream!) {
      if (event.metadata) usage = event.metadata.usage
      text += event.contentBlockDelta?.delta?.text ?? ''
    }
    expect(usage).toMatchObject({
      inputTokens: 318,
      cacheWriteInputTokens: 4096,
      outputTokens: 77,
      totalTokens: 318 + 4096 + 77,
      cacheDetails: [
        { ttl: '5m', inputTokens: 1024 },
        { ttl: '1h', inputTokens: 3072 },
      ],
    })
    expect(text).toContain('[usagewire-doctor:cache-write#aws-1]')

    const invoke = await client.send(
      new InvokeModelWithResponseStreamCommand({
        modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
        contentType: 'application/json',
        body: JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: 10,
          messages: [{ role: 'user', content: marker('cache-read', 'aws-2') }],
        }),
      }),
    )
    const events: Array<Record<string, any>> = []
    for await (const part of invoke.body!) events.push(JSON.parse(Buffer.from(part.chunk!.bytes!).toString('utf8')))
    expect(events[0]!.message.usage).toMatchObject({ input_tokens: 212, cache_read_input_tokens: 30433 })
    expect(events.at(-1)!['amazon-bedrock-invocationMetrics']).toMatchObject({
      inputTokenCount: 212,
      cacheReadInputTokenCount: 30433,
      outputTokenCount: 104,
    })
    expect(provider.callsFor('aws-1')[0]).toMatchObject({ dialect: 'bedrock-converse', streaming: true })
    expect(provider.callsFor('aws-2')[0]).toMatchObject({ dialect: 'bedrock-invoke', streaming: true })
  })

  it('Gemini: generateContentStream read by the Google GenAI SDK', async () => {
    const stream = await genaiClient(provider.url).models.generateContentStream({
      model: 'gemini-2.5-flash',
      contents: `Hi ${marker('reasoning', 'g-1')}`,
    })
    let last: unknown
    for await (const chunk of stream) last = chunk.usageMetadata
    expect(last).toMatchObject({
      promptTokenCount: 640,
      candidatesTokenCount: 128,
      thoughtsTokenCount: 384,
      totalTokenCount: 1152,
    })
  })

  it("the control plane's ListInferenceProfiles, model lists and count_tokens", async () => {
    const profiles = (await (
      await fetch(`${provider.url}/inference-profiles?maxResults=100&typeEquals=SYSTEM_DEFINED`)
    ).json()) as {
      inferenceProfileSummaries: Array<{ inferenceProfileId: string; status: string }>
    }
    expect(profiles.inferenceProfileSummaries.length).toBeGreaterThan(0)
    expect(profiles.inferenceProfileSummaries[0]).toMatchObject({ status: 'ACTIVE' })
    expect(((await (await fetch(`${provider.url}/v1/models`)).json()) as { object: string }).object).toBe('list')
    const count = await post('/v1/messages/count_tokens', {
      model: 'x',
      messages: [{ role: 'user', content: marker('cache-read', 'c') }],
    })
    expect(await count.json()).toEqual({ input_tokens: 212 + 30433 })
  })
})

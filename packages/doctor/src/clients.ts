/**
 * One request through the gateway with the official SDK of its client format, as an application makes it:
 * Anthropic `messages.stream().finalMessage()` and `messages.create`; OpenAI Chat streaming with and without
 * `stream_options.include_usage`, and not streaming; OpenAI Responses streaming and not. The SDK gets a
 * `fetch` that tees the body, so the raw bytes it read are kept beside what it reported.
 */
import type Anthropic from '@anthropic-ai/sdk'
import { VERSION as ANTHROPIC_VERSION } from '@anthropic-ai/sdk/version'
import type OpenAI from 'openai'
import { VERSION as OPENAI_VERSION } from 'openai/version'
import type { ScenarioName } from './provider/scenarios.js'
import type { ClientFormat } from './readers.js'
import type { Mode } from './rules.js'

/** What one client request got. */
export interface Capture {
  /** The HTTP status, when an answer came. */
  status?: number
  /** The answer's `x-should-retry` header, when it had one (the SDKs retry on `true`, never on `false`). */
  retryHeader?: string
  /** The body bytes the gateway sent (decoded), to the end, or to where the client left. */
  body: string
  /** The usage object the SDK handed to the application, when it did. */
  sdkUsage?: unknown
  /** What the SDK threw (an API error, an event order it rejects), when it threw. */
  sdkError?: string
  /** No connection could be made to the gateway. */
  unreachable?: boolean
  /** The client left part-way (the abort scenario). */
  left?: boolean
  ms: number
}

export interface ClientRequest {
  format: ClientFormat
  mode: Mode
  scenario: ScenarioName
  /** The marker the prompt carries. */
  marker: string
  model: string
  /** The gateway's base URL (no `/v1`). */
  gateway: string
  apiKey: string
  timeoutMs: number
  /** Headers sent with the request besides the SDK's own. */
  headers?: Record<string, string>
}

/**
 * A `fetch` that hands the SDK the response as it comes and keeps a copy of the decoded bytes. The copy is
 * read to the answer's end even when the SDK gives up on it part-way (an event order it rejects): the other
 * readers are judged on every event the gateway sent, as a client that iterates the events reads them. Only
 * a client that leaves (the abort scenario), an SDK that stops before an answer came, or the timeout end it.
 * `read` resolves once the copy is complete.
 */
function teeFetch(capture: Capture, timeoutMs: number): { fetch: typeof fetch; read: () => Promise<void> } {
  const decoder = new TextDecoder()
  const reads: Promise<void>[] = []
  const tee: typeof fetch = async (input, init) => {
    const own = new AbortController()
    const timer = setTimeout(() => own.abort(new Error('timeout')), timeoutMs)
    const sdkSignal = init?.signal
    const follow = () => {
      if (capture.left || capture.status === undefined) own.abort(sdkSignal?.reason)
    }
    if (sdkSignal?.aborted) follow()
    else sdkSignal?.addEventListener('abort', follow, { once: true })
    let response: Response
    try {
      response = await fetch(input, { ...init, signal: own.signal })
    } catch (error) {
      clearTimeout(timer)
      throw error
    }
    capture.status = response.status
    const retry = response.headers.get('x-should-retry')
    if (retry !== null) capture.retryHeader = retry
    if (!response.body) {
      clearTimeout(timer)
      return response
    }
    const [forSdk, forCopy] = response.body.tee()
    reads.push(
      (async () => {
        const reader = forCopy.getReader()
        try {
          for (;;) {
            const { done, value } = await reader.read()
            if (done) break
            capture.body += decoder.decode(value, { stream: true })
          }
        } catch {
          // Left, timed out or cut: the copy ends where the bytes did.
        } finally {
          capture.body += decoder.decode()
          clearTimeout(timer)
        }
      })(),
    )
    return new Response(forSdk, { status: response.status, statusText: response.statusText, headers: response.headers })
  }
  return { fetch: tee, read: async () => void (await Promise.all(reads)) }
}

const TOOL_SCHEMA = {
  type: 'object' as const,
  properties: { city: { type: 'string' }, unit: { type: 'string' }, ref: { type: 'string' } },
  required: ['city'],
}
const TOOL_DESCRIPTION = 'The current weather in a city.'

const prompt = (marker: string) => `Answer in one short sentence. ${marker}`

function describe(error: unknown): { message: string; unreachable: boolean } {
  const err = error as { name?: string; status?: number; message?: string; cause?: { code?: string } }
  const name = err?.name ?? 'Error'
  const unreachable =
    name === 'APIConnectionError' &&
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|fetch failed/i.test(`${err.message} ${err.cause?.code ?? ''}`) &&
    err.status === undefined
  return { message: `${name}${err?.status ? ` ${err.status}` : ''}: ${err?.message ?? String(error)}`, unreachable }
}

/** Leaves the stream after its first text, or after `ms` without one. */
function leaveOnFirstText(abort: () => void, capture: Capture, ms: number) {
  const timer = setTimeout(() => leave(), ms)
  const leave = () => {
    clearTimeout(timer)
    if (capture.left) return
    capture.left = true
    abort()
  }
  return { leave, clear: () => clearTimeout(timer) }
}

async function anthropic(request: ClientRequest, capture: Capture, fetch: typeof globalThis.fetch): Promise<void> {
  // The SDKs load when a request is sent: importing the provider's wire builders stays light.
  const { default: Anthropic } = await import('@anthropic-ai/sdk')
  const client: Anthropic = new Anthropic({
    baseURL: request.gateway,
    apiKey: request.apiKey,
    fetch,
    maxRetries: 0,
    timeout: request.timeoutMs,
    ...(request.headers && { defaultHeaders: request.headers }),
  })
  const reasoning = request.scenario === 'reasoning'
  const params = {
    model: request.model,
    max_tokens: reasoning ? 2048 : 256,
    messages: [{ role: 'user' as const, content: prompt(request.marker) }],
    ...(reasoning && { thinking: { type: 'enabled' as const, budget_tokens: 1024 } }),
    ...(request.scenario === 'tool-call' && {
      tools: [{ name: 'get_weather', description: TOOL_DESCRIPTION, input_schema: TOOL_SCHEMA }],
    }),
  }
  if (request.mode === 'create') {
    const message = await client.messages.create(params)
    capture.sdkUsage = message.usage
    return
  }
  const stream = client.messages.stream(params)
  if (request.scenario === 'abort') {
    const exit = leaveOnFirstText(() => stream.abort(), capture, request.timeoutMs / 2)
    stream.on('text', exit.leave)
    try {
      await stream.done()
    } catch {
      // Left on purpose: what the client had is in the capture.
    }
    exit.clear()
    if (capture.left) return
  }
  const message = await stream.finalMessage()
  capture.sdkUsage = message.usage
}

async function openaiChat(request: ClientRequest, capture: Capture, client: OpenAI): Promise<void> {
  const params = {
    model: request.model,
    messages: [{ role: 'user' as const, content: prompt(request.marker) }],
    max_completion_tokens: 2048,
    ...(request.scenario === 'reasoning' && { reasoning_effort: 'low' as const }),
    ...(request.scenario === 'tool-call' && {
      tools: [
        {
          type: 'function' as const,
          function: { name: 'get_weather', description: TOOL_DESCRIPTION, parameters: TOOL_SCHEMA },
        },
      ],
    }),
  }
  if (request.mode === 'create') {
    const completion = await client.chat.completions.create(params)
    capture.sdkUsage = completion.usage
    return
  }
  const stream = client.chat.completions.stream({
    ...params,
    ...(request.mode === 'stream+usage' && { stream_options: { include_usage: true } }),
  })
  if (request.scenario === 'abort') {
    const exit = leaveOnFirstText(() => stream.abort(), capture, request.timeoutMs / 2)
    stream.on('content', exit.leave)
    try {
      await stream.done()
    } catch {
      // Left on purpose.
    }
    exit.clear()
    if (capture.left) return
  }
  const completion = await stream.finalChatCompletion()
  capture.sdkUsage = completion.usage
}

async function openaiResponses(request: ClientRequest, capture: Capture, client: OpenAI): Promise<void> {
  const params = {
    model: request.model,
    input: prompt(request.marker),
    max_output_tokens: 2048,
    ...(request.scenario === 'reasoning' && { reasoning: { effort: 'low' as const } }),
    ...(request.scenario === 'tool-call' && {
      tools: [
        {
          type: 'function' as const,
          name: 'get_weather',
          description: TOOL_DESCRIPTION,
          parameters: TOOL_SCHEMA,
          strict: false,
        },
      ],
    }),
  }
  if (request.mode === 'create') {
    const response = await client.responses.create(params)
    capture.sdkUsage = response.usage
    return
  }
  const stream = client.responses.stream(params)
  if (request.scenario === 'abort') {
    const exit = leaveOnFirstText(() => stream.abort(), capture, request.timeoutMs / 2)
    stream.on('response.output_text.delta', exit.leave)
    try {
      await stream.done()
    } catch {
      // Left on purpose.
    }
    exit.clear()
    if (capture.left) return
  }
  const response = await stream.finalResponse()
  capture.sdkUsage = response.usage
}

/** Sends `request` and keeps what came back; never throws (an SDK error is part of the capture). */
export async function sendRequest(request: ClientRequest): Promise<Capture> {
  const capture: Capture = { body: '', ms: 0 }
  const started = performance.now()
  const tee = teeFetch(capture, request.timeoutMs)
  try {
    if (request.format === 'anthropic') await anthropic(request, capture, tee.fetch)
    else {
      const { default: OpenAI } = await import('openai')
      const client: OpenAI = new OpenAI({
        baseURL: `${request.gateway}/v1`,
        apiKey: request.apiKey,
        fetch: tee.fetch,
        maxRetries: 0,
        timeout: request.timeoutMs,
        ...(request.headers && { defaultHeaders: request.headers }),
      })
      if (request.format === 'openai-chat') await openaiChat(request, capture, client)
      else await openaiResponses(request, capture, client)
    }
  } catch (error) {
    const { message, unreachable } = describe(error)
    capture.sdkError = message
    if (unreachable && capture.status === undefined) capture.unreachable = true
  }
  await tee.read()
  capture.ms = performance.now() - started
  return capture
}

/** The installed SDK versions, named on the card's "run" rows. */
export const SDK_VERSIONS = { anthropic: ANTHROPIC_VERSION, openai: OPENAI_VERSION }

/**
 * The doctor's scenarios: what each one really costs (its truth, in canonical disjoint buckets:
 * docs/usage-model.md#canonical-buckets) and the honest answer a provider of every dialect gives for it.
 * A request selects its scenario with a marker in its prompt text, `[usagewire-doctor:cache-read#t3]`:
 * gateways pass prompts through but rename models and drop headers. The answer echoes the marker, so that
 * requests in flight together get different texts (what the sidecar's content correlation needs).
 */
import { anthropicEvents, anthropicMessage, anthropicStream, fullUsage, type AnthropicUsage } from './anthropic.js'
import { bedrockStream, invocationMetrics } from './bedrock.js'
import { converseBody, converseStream, tokenUsage } from './converse.js'
import { geminiResponse, geminiSnapshots, geminiStream, geminiUsage } from './gemini.js'
import { chatCompletion, chatStream, chatUsage } from './openai-chat.js'
import { responsesBody, responsesStream, responsesUsage } from './openai-responses.js'
import { idFragment, textDeltas } from './sse.js'
import type { RequestContext, TrueUsage } from './types.js'

export const SCENARIO_NAMES = [
  'plain',
  'cache-read',
  'cache-write',
  'reasoning',
  'tool-call',
  'error',
  'abort',
] as const
export type ScenarioName = (typeof SCENARIO_NAMES)[number]

/** The dialects the doctor's provider answers, named as in a usagewire record, plus Bedrock Converse. */
export type ProviderDialect =
  'anthropic-messages' | 'openai-chat' | 'openai-responses' | 'bedrock-converse' | 'bedrock-invoke' | 'gemini'

export interface DoctorScenario {
  name: ScenarioName
  about: string
  /** What the answer costs; `undefined` for the upstream error, which costs nothing. */
  truth: TrueUsage | undefined
}

export const DOCTOR_SCENARIOS: Record<ScenarioName, DoctorScenario> = {
  plain: {
    name: 'plain',
    about: 'a short answer, no cache',
    truth: { input: 1850, cacheRead: 0, cacheWrite: 0, output: 96, reasoning: 0 },
  },
  'cache-read': {
    name: 'cache-read',
    about: 'most of the prompt served from the prompt cache',
    truth: { input: 212, cacheRead: 30433, cacheWrite: 0, output: 104, reasoning: 0 },
  },
  'cache-write': {
    name: 'cache-write',
    about: 'the prompt written to the cache, split between the 5-minute and the 1-hour TTL',
    truth: {
      input: 318,
      cacheRead: 0,
      cacheWrite: 4096,
      cacheWrite5m: 1024,
      cacheWrite1h: 3072,
      output: 77,
      reasoning: 0,
    },
  },
  reasoning: {
    name: 'reasoning',
    about: 'a reasoning (thinking) model: reasoning is part of the output',
    truth: { input: 640, cacheRead: 0, cacheWrite: 0, output: 512, reasoning: 384 },
  },
  'tool-call': {
    name: 'tool-call',
    about: 'text, then a tool call; a cache read too',
    truth: { input: 905, cacheRead: 2048, cacheWrite: 0, output: 61, reasoning: 0 },
  },
  error: {
    name: 'error',
    about: 'the provider answers 400 with a JSON error',
    truth: undefined,
  },
  abort: {
    name: 'abort',
    about: 'the client leaves mid-stream, after the first text',
    truth: { input: 1422, cacheRead: 8192, cacheWrite: 0, output: 300, reasoning: 0 },
  },
}

export const MARKER_PREFIX = 'usagewire-doctor'

/** The marker a prompt carries to select `scenario`; `tag` makes the request's answer its own. */
export const marker = (scenario: ScenarioName, tag: string): string => `[${MARKER_PREFIX}:${scenario}#${tag}]`

const MARKER = /\[usagewire-doctor:([a-z-]+)(?:#([A-Za-z0-9_.-]+))?\]/

/** The scenario and tag a request body names, or none (a gateway's own health check, say). */
export function findMarker(text: string): { scenario: ScenarioName; tag: string } | undefined {
  const found = MARKER.exec(text)
  if (!found || !(SCENARIO_NAMES as readonly string[]).includes(found[1]!)) return undefined
  return { scenario: found[1] as ScenarioName, tag: found[2] ?? '' }
}

/**
 * What a dialect can state of `truth`: Gemini has no cache-write counter (its prompt count holds those
 * tokens as input), OpenAI has no TTL split, Converse no reasoning count. Readers are judged against
 * what the provider stated.
 */
export function statedTruth(dialect: ProviderDialect, truth: TrueUsage): TrueUsage {
  const { cacheWrite5m: _5m, cacheWrite1h: _1h, ...noSplit } = truth
  switch (dialect) {
    case 'gemini':
      return { ...noSplit, input: truth.input + truth.cacheWrite, cacheWrite: 0 }
    case 'openai-chat':
    case 'openai-responses':
      return noSplit
    case 'bedrock-converse':
      return { ...truth, reasoning: 0 }
    default:
      return truth
  }
}

/** One answer: its status, headers and body pieces; `pauseAfter` pieces, the provider waits for the client. */
export interface Answer {
  status: number
  contentType: string
  headers?: Record<string, string>
  pieces: Array<string | Uint8Array>
  /** The abort scenario: after this many pieces the provider waits (for the client to leave) before going on. */
  pauseAfter?: number
  /** What the answer states, in canonical buckets; none for an error. */
  stated?: TrueUsage
}

const SSE = 'text/event-stream; charset=utf-8'
const EVENTSTREAM = 'application/vnd.amazon.eventstream'
const JSON_TYPE = 'application/json'

const TOOL = { name: 'get_weather', input: (m: string) => ({ city: 'Lisbon', unit: 'celsius', ref: m }) }

/** The answer text: the marker is in it, so no two requests in flight get the same text. */
function answerText(scenario: ScenarioName, mark: string): string {
  const base = `The usagewire doctor answers ${mark} with known usage.`
  if (scenario === 'tool-call') return `Checking the weather for ${mark} now.`
  // The abort scenario streams long enough for the client to leave part-way.
  if (scenario === 'abort') return `${base} ${'It keeps going so the client can leave part-way. '.repeat(4)}`.trim()
  return base
}

const REASONING_TEXT = 'The user wants one sentence; keep it short and exact.'

function errorAnswer(dialect: ProviderDialect, mark: string): Answer {
  const message = `usagewire doctor: a deliberate 400 for ${mark}`
  switch (dialect) {
    case 'anthropic-messages':
      return {
        status: 400,
        contentType: JSON_TYPE,
        pieces: [JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message } })],
      }
    case 'openai-chat':
    case 'openai-responses':
      return {
        status: 400,
        contentType: JSON_TYPE,
        pieces: [JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: null } })],
      }
    case 'bedrock-converse':
    case 'bedrock-invoke':
      return {
        status: 400,
        contentType: JSON_TYPE,
        headers: { 'x-amzn-errortype': 'ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/' },
        pieces: [JSON.stringify({ message })],
      }
    case 'gemini':
      return {
        status: 400,
        contentType: JSON_TYPE,
        pieces: [JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT' } })],
      }
  }
}

/** Anthropic usage with the thinking count when there is one (docs/dialects/anthropic-messages.md#fields). */
function withThinking(usage: AnthropicUsage, truth: TrueUsage): AnthropicUsage {
  return truth.reasoning > 0 ? { ...usage, output_tokens_details: { thinking_tokens: truth.reasoning } } : usage
}

/** First-party `message_delta` usage: cumulative totals, no TTL split. */
function finalDeltaUsage(truth: TrueUsage): AnthropicUsage {
  return withThinking(
    {
      input_tokens: truth.input,
      cache_creation_input_tokens: truth.cacheWrite,
      cache_read_input_tokens: truth.cacheRead,
      output_tokens: truth.output,
    },
    truth,
  )
}

/**
 * The honest answer of `dialect` to a request for `scenario`, streaming or not. `model` is the one the
 * request named; `mark` the marker it carried (echoed in the text).
 */
export function answer(
  dialect: ProviderDialect,
  scenarioName: ScenarioName,
  mark: string,
  ctx: RequestContext,
  streaming: boolean,
  model: string,
): Answer {
  const scenario = DOCTOR_SCENARIOS[scenarioName]
  if (!scenario.truth) return errorAnswer(dialect, mark)
  const truth = statedTruth(dialect, scenario.truth)
  const text = answerText(scenarioName, mark)
  const reasoning = truth.reasoning > 0 ? REASONING_TEXT : undefined
  const toolId = `toolu_01${idFragment(ctx.seq, 20)}`
  const tool = scenarioName === 'tool-call' ? TOOL : undefined
  const pauseAt = scenarioName === 'abort' && streaming
  const out = (contentType: string, pieces: Array<string | Uint8Array>, firstText: number): Answer => ({
    status: 200,
    contentType,
    pieces,
    stated: truth,
    // After the first two text deltas.
    ...(pauseAt && { pauseAfter: firstText + 2 }),
  })
  /** A whole (non-streamed) answer. */
  const whole = (body: unknown): Answer => ({
    status: 200,
    contentType: JSON_TYPE,
    pieces: [JSON.stringify(body)],
    stated: truth,
  })

  switch (dialect) {
    case 'anthropic-messages':
    case 'bedrock-invoke': {
      const body = {
        text,
        model,
        usage: withThinking(fullUsage(truth, 1), truth),
        deltaUsages: [finalDeltaUsage(truth)],
        ...(reasoning !== undefined && { thinking: reasoning }),
        ...(tool && { toolUse: { id: toolId, name: tool.name, input: tool.input(mark) } }),
      }
      if (!streaming) {
        const json = anthropicMessage(ctx, { ...body, usage: withThinking(fullUsage(truth), truth) })
        return whole(json)
      }
      // The first text delta: after message_start, the thinking block, and the text block's start (and ping).
      const events = anthropicEvents(ctx, body)
      const firstText = events.findIndex((e) => (e.delta as { type?: string } | undefined)?.type === 'text_delta')
      if (dialect === 'anthropic-messages') return out(SSE, anthropicStream(ctx, body), firstText + 1)
      const frames = bedrockStream(ctx, { ...body, metrics: invocationMetrics(truth) })
      return out(EVENTSTREAM, frames, firstText)
    }
    case 'bedrock-converse': {
      const body = {
        text,
        usage: tokenUsage(truth),
        ...(reasoning !== undefined && { reasoning }),
        ...(tool && {
          toolUse: { toolUseId: `tooluse_${idFragment(ctx.seq, 22)}`, name: tool.name, input: tool.input(mark) },
        }),
      }
      if (!streaming) return whole(converseBody(ctx, body))
      // messageStart, then the reasoning deltas, its signature and its stop.
      const firstText = 1 + (reasoning === undefined ? 0 : textDeltas(reasoning).length + 2)
      return out(EVENTSTREAM, converseStream(ctx, body), firstText)
    }
    case 'openai-chat': {
      // OpenAI states cache writes inside the prompt, in `cache_write_tokens` (docs/dialects/openai-chat.md).
      const usage = chatUsage(truth)
      if (truth.cacheWrite > 0)
        (usage.prompt_tokens_details as Record<string, number>).cache_write_tokens = truth.cacheWrite
      const body = {
        text,
        usage,
        model,
        ...(tool && {
          toolCall: {
            id: `call_${idFragment(ctx.seq, 24)}`,
            name: tool.name,
            arguments: JSON.stringify(tool.input(mark)),
          },
        }),
      }
      if (!streaming) return whole(chatCompletion(ctx, body))
      return out(SSE, chatStream(ctx, body), 1)
    }
    case 'openai-responses': {
      const usage = responsesUsage(truth)
      if (truth.cacheWrite > 0)
        (usage.input_tokens_details as Record<string, number>).cache_write_tokens = truth.cacheWrite
      const body = {
        text,
        usage,
        model,
        reasoningItem: truth.reasoning > 0,
        ...(tool && {
          functionCall: {
            callId: `call_${idFragment(ctx.seq, 24)}`,
            name: tool.name,
            arguments: JSON.stringify(tool.input(mark)),
          },
        }),
      }
      if (!streaming) return whole(responsesBody(ctx, body))
      // response.created, response.in_progress, (the reasoning item's two events,) the message's two.
      return out(SSE, responsesStream(ctx, body), 4 + (truth.reasoning > 0 ? 2 : 0))
    }
    case 'gemini': {
      const count = scenarioName === 'abort' ? 8 : 3
      const body = {
        text,
        model,
        usage: geminiUsage(truth),
        snapshots: geminiSnapshots(truth, count),
        ...(reasoning !== undefined && { thought: reasoning }),
        ...(tool && { functionCall: { name: tool.name, args: tool.input(mark) } }),
      }
      if (!streaming) return whole(geminiResponse(ctx, body))
      const pieces = geminiStream(ctx, body)
      const array = ctx.jsonArray === true
      return out(array ? JSON_TYPE : 'text/event-stream', pieces, 0)
    }
  }
}

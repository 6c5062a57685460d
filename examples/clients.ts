/**
 * One streaming request through the gateway with each official SDK, returning the usage object
 * exactly as the SDK hands it to the application.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
// @anthropic-ai/sdk 0.50.1 (aliased): on message_delta it overwrites the cache counters
// unconditionally, so a delta without them erases them (docs/dialects/anthropic-messages.md#how-sdks-accumulate).
import Anthropic050 from 'sdk050'

export type ClientKind = 'anthropic' | 'anthropic-0.50.1' | 'openai-chat' | 'openai-responses'

export interface ClientRequest {
  kind: ClientKind
  /** Gateway base URL without /v1. */
  baseURL: string
  /** The mock scenario, sent as the model name. */
  model: string
  headers: Record<string, string>
}

const PROMPT = 'Say something about token usage.'

/** Both SDK versions stream the same way; they differ in how they accumulate `message_delta` usage. */
async function anthropicUsage(client: Anthropic | Anthropic050, req: ClientRequest): Promise<unknown> {
  const message = await (client as Anthropic).messages
    .stream(
      { model: req.model, max_tokens: 256, messages: [{ role: 'user', content: PROMPT }] },
      { headers: req.headers },
    )
    .finalMessage()
  return message.usage
}

export async function send(req: ClientRequest): Promise<unknown> {
  switch (req.kind) {
    case 'anthropic':
      return anthropicUsage(new Anthropic({ apiKey: 'x', baseURL: req.baseURL, maxRetries: 0 }), req)
    case 'anthropic-0.50.1':
      return anthropicUsage(new Anthropic050({ apiKey: 'x', baseURL: req.baseURL, maxRetries: 0 }), req)
    case 'openai-chat': {
      const client = new OpenAI({ apiKey: 'x', baseURL: `${req.baseURL}/v1`, maxRetries: 0 })
      const stream = await client.chat.completions.create(
        {
          model: req.model,
          messages: [{ role: 'user', content: PROMPT }],
          stream: true,
          stream_options: { include_usage: true },
        },
        { headers: req.headers },
      )
      // Like most applications: keep the last usage seen on any chunk.
      let usage: unknown = null
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
      return usage
    }
    case 'openai-responses': {
      const client = new OpenAI({ apiKey: 'x', baseURL: `${req.baseURL}/v1`, maxRetries: 0 })
      const stream = await client.responses.create(
        { model: req.model, input: PROMPT, stream: true },
        { headers: req.headers },
      )
      let usage: unknown = null
      for await (const event of stream) if (event.type === 'response.completed') usage = event.response.usage
      return usage
    }
  }
}

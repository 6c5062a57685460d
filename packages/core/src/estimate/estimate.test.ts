import fc from 'fast-check'
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base'
import { describe, expect, it } from 'vitest'
import { estimateInputTokens, estimateOutputTokens } from '@usagewire/core/estimate'

// The numbers below were counted once with o200k_base and checked against the sources named in
// docs/estimate.md#how-close-they-are; they pin the counting rules, not the tokenizer.

const weatherTool = {
  name: 'get_current_weather',
  description: 'Get the current weather in a given location',
  parameters: {
    type: 'object',
    properties: {
      location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
      unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] },
    },
    required: ['location'],
  },
}

const chatExample = {
  model: 'gpt-4o',
  messages: [
    {
      role: 'system',
      content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.',
    },
    { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
    { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
    {
      role: 'system',
      name: 'example_user',
      content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
      role: 'system',
      name: 'example_assistant',
      content: "Let's talk later when we're less busy about how to do better.",
    },
    {
      role: 'user',
      content: "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
  ],
}

const chatToolExample = {
  model: 'gpt-4o',
  messages: [
    { role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
    { role: 'user', content: "What's the weather like in San Francisco?" },
  ],
  tools: [{ type: 'function', function: weatherTool }],
}

const anthropicBasic = {
  model: 'claude-sonnet-4-5',
  system: 'You are a scientist',
  messages: [{ role: 'user', content: 'Hello, Claude' }],
}

const anthropicTool = {
  model: 'claude-sonnet-4-5',
  tools: [
    {
      name: 'get_weather',
      description: 'Get the current weather in a given location',
      input_schema: {
        type: 'object',
        properties: { location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' } },
        required: ['location'],
      },
    },
  ],
  messages: [{ role: 'user', content: "What's the weather like in San Francisco?" }],
}

const thought = 'This is a nice number theory question. Lets think about it step by step...'
const anthropicThinking = {
  model: 'claude-sonnet-4-5',
  thinking: { type: 'enabled', budget_tokens: 16000 },
  messages: [
    { role: 'user', content: 'Are there an infinite number of prime numbers such that n mod 4 == 3?' },
    {
      role: 'assistant',
      content: [
        {
          type: 'thinking',
          thinking: thought,
          signature: 'EuYBCkQYAiJAgCs1le6/Pol5Z4/JMomVOouGrWdhYNsH3ukzUECbB6iWrSQtsQuRHJID6lWV...',
        },
        { type: 'text', text: 'Yes, there are infinitely many prime numbers p such that p mod 4 = 3...' },
      ],
    },
    { role: 'user', content: 'Can you write a formal proof?' },
  ],
}

const imageBody = (data: string) => ({
  model: 'claude-sonnet-4-5',
  messages: [
    {
      role: 'user',
      content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data } },
        { type: 'text', text: 'Describe this image' },
      ],
    },
  ],
})
const anthropicImage = imageBody('/9j/4AAQSkZJRgABAQ')

const responsesExample = {
  model: 'gpt-4.1',
  instructions: 'You are a terse assistant.',
  input: [
    { role: 'user', content: [{ type: 'input_text', text: 'What is the capital of France?' }] },
    { type: 'function_call', call_id: 'c1', name: 'lookup', arguments: '{"city":"Paris"}' },
    { type: 'function_call_output', call_id: 'c1', output: '{"population":2102650}' },
  ],
  tools: [
    {
      type: 'function',
      name: 'lookup',
      description: 'Look a city up.',
      parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' } } },
    },
  ],
}

const converseExample = {
  system: [{ text: 'You are a terse assistant.' }],
  messages: [
    { role: 'user', content: [{ text: 'What is the capital of France?' }] },
    { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'lookup', input: { city: 'Paris' } } }] },
    { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ json: { population: 2102650 } }] } }] },
  ],
  toolConfig: {
    tools: [
      {
        toolSpec: {
          name: 'lookup',
          description: 'Look a city up.',
          inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } },
        },
      },
    ],
  },
}

const geminiExample = {
  systemInstruction: { parts: [{ text: 'You are a terse assistant.' }] },
  contents: [
    { role: 'user', parts: [{ text: 'What is the capital of France?' }] },
    { role: 'model', parts: [{ functionCall: { name: 'lookup', args: { city: 'Paris' } } }] },
    { role: 'user', parts: [{ functionResponse: { name: 'lookup', response: { population: 2102650 } } }] },
  ],
  tools: [
    {
      functionDeclarations: [
        {
          name: 'lookup',
          description: 'Look a city up.',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      ],
    },
  ],
}

const ollamaChat = {
  model: 'llama3.2',
  messages: [
    { role: 'system', content: 'You are a terse assistant.' },
    { role: 'user', content: 'What is the capital of France?' },
  ],
  options: { temperature: 0 },
}

const ollamaTools = { ...ollamaChat, tools: [{ type: 'function', function: weatherTool }] }

const ollamaGenerate = { model: 'llama3.2', system: 'You are a terse assistant.', prompt: 'Why is the sky blue?' }

describe('estimateInputTokens: exact counts of small bodies', () => {
  it.each([
    ['OpenAI Chat, six messages with names (OpenAI reports 124 for gpt-4o)', chatExample, 'openai-chat', 124],
    ['OpenAI Chat with a function tool (OpenAI reports 101 for gpt-4o)', chatToolExample, 'openai-chat', 101],
    ['Anthropic, system and one message', anthropicBasic, 'anthropic-messages', 7],
    ['Anthropic with a tool: its documented 346-token tool prompt included', anthropicTool, 'anthropic-messages', 398],
    ['Anthropic, thinking of an earlier turn dropped', anthropicThinking, 'anthropic-messages', 44],
    ['Anthropic, one image (1600) and its question', anthropicImage, 'anthropic-messages', 1603],
    ['Bedrock InvokeModel reads as Anthropic', anthropicTool, 'bedrock-invoke', 398],
    ['OpenAI Responses, items and a function tool', responsesExample, 'openai-responses', 79],
    ['Bedrock Converse, a tool round trip', converseExample, 'bedrock-converse', 46],
    ['Gemini, a function round trip', geminiExample, 'gemini', 47],
    ['Ollama /api/chat', ollamaChat, 'ollama', 13],
    ['Ollama /api/generate', ollamaGenerate, 'ollama', 12],
  ] as const)('%s', (_name, body, dialect, expected) => {
    expect(estimateInputTokens(body, dialect)).toBe(expected)
  })

  it('Gemini text is the text’s tokens, with no framing', () => {
    const body = { contents: [{ parts: [{ text: 'The quick brown fox jumps over the lazy dog.' }] }] }
    expect(estimateInputTokens(body, 'gemini')).toBe(10)
  })

  it('OpenAI Chat is exactly the message text in o200k_base plus the documented framing', () => {
    const texts = chatExample.messages.map((m) => countTokens(m.content) + countTokens(m.role))
    const names = chatExample.messages.map((m) => ('name' in m ? countTokens(m.name ?? '') + 1 : 0))
    const text = [...texts, ...names].reduce((a, b) => a + b, 0)
    expect(estimateInputTokens(chatExample, 'openai-chat')).toBe(text + 3 * chatExample.messages.length + 3)
  })

  it('an OpenAI image costs 765 tokens, 85 at low detail', () => {
    const body = (detail: string) => ({
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,', detail } }] }],
    })
    const empty = estimateInputTokens({ messages: [{ role: 'user', content: [] }] }, 'openai-chat')!
    expect(estimateInputTokens(body('high'), 'openai-chat')! - empty).toBe(765)
    expect(estimateInputTokens(body('low'), 'openai-chat')! - empty).toBe(85)
  })

  it('base64 data is never tokenized: a large image costs its allowance, not its bytes', () => {
    expect(estimateInputTokens(imageBody('QUJD'.repeat(250_000)), 'anthropic-messages')).toBe(1603)
  })

  it('a text document counts its text; a PDF its allowance', () => {
    const doc = (source: object) => ({ messages: [{ role: 'user', content: [{ type: 'document', source }] }] })
    expect(estimateInputTokens(doc({ type: 'text', media_type: 'text/plain', data: 'Hello world' }))).toBe(2)
    expect(estimateInputTokens(doc({ type: 'base64', media_type: 'application/pdf', data: 'JVBERi0' }))).toBe(2000)
  })
})

describe('estimateInputTokens: structure', () => {
  const bodies = [
    ['anthropic-messages', anthropicTool],
    ['openai-chat', chatToolExample],
    ['openai-responses', responsesExample],
    ['bedrock-converse', converseExample],
    ['gemini', geminiExample],
    ['ollama', ollamaTools],
  ] as const

  it.each(bodies)('%s is recognised by its shape alone', (dialect, body) => {
    expect(estimateInputTokens(body)).toBe(estimateInputTokens(body, dialect))
  })

  it('a raw body, as JSON text or bytes, reads like the parsed one', () => {
    const text = JSON.stringify(chatExample)
    expect(estimateInputTokens(text, 'openai-chat')).toBe(124)
    expect(estimateInputTokens(new TextEncoder().encode(text))).toBe(124)
    expect(estimateInputTokens(Buffer.from(JSON.stringify(anthropicTool)))).toBe(398)
    expect(estimateInputTokens('{"messages": [', 'openai-chat')).toBeUndefined()
    expect(estimateInputTokens('"just a string"')).toBeUndefined()
  })

  it('a dialect usagewire does not know falls back to the shape', () => {
    expect(estimateInputTokens(chatExample, 'mystery')).toBe(124)
    expect(estimateInputTokens(chatExample, 'toString')).toBe(124)
  })

  it('the system prompt counts', () => {
    const system = 'You are a meticulous reviewer of tax law.'
    const n = countTokens(system)
    const { system: _, ...bare } = anthropicBasic
    expect(estimateInputTokens(anthropicBasic)! - estimateInputTokens(bare, 'anthropic-messages')!).toBe(4)
    expect(
      estimateInputTokens({ ...anthropicBasic, system: [{ type: 'text', text: system }] })! -
        estimateInputTokens(bare, 'anthropic-messages')!,
    ).toBe(n)
    const { systemInstruction: __, ...bareGemini } = geminiExample
    expect(estimateInputTokens(geminiExample)! - estimateInputTokens(bareGemini)!).toBe(
      countTokens('You are a terse assistant.'),
    )
    const { system: ___, ...bareConverse } = converseExample
    expect(estimateInputTokens(converseExample)).toBeGreaterThan(estimateInputTokens(bareConverse)!)
    const { instructions: ____, ...bareResponses } = responsesExample
    expect(estimateInputTokens(responsesExample)).toBeGreaterThan(estimateInputTokens(bareResponses)!)
  })

  it('tools count', () => {
    const withoutTools = (body: Record<string, unknown>) => {
      const copy = { ...body }
      delete copy.tools
      delete copy.toolConfig
      return copy
    }
    for (const [dialect, body] of bodies) {
      expect(estimateInputTokens(body, dialect), dialect).toBeGreaterThan(
        estimateInputTokens(withoutTools(body), dialect)!,
      )
    }
    // Anthropic's hidden tool prompt: 346 with tool_choice auto, 313 when a tool is forced
    const forced = { ...anthropicTool, tool_choice: { type: 'any' } }
    expect(estimateInputTokens(anthropicTool)! - estimateInputTokens(forced)!).toBe(346 - 313)
  })

  it('thinking counts in the current turn only, as Anthropic counts it', () => {
    const question = { role: 'user', content: 'Is 7 prime?' }
    const text = { type: 'text', text: 'Yes.' }
    const answer = { role: 'assistant', content: [{ type: 'thinking', thinking: thought, signature: 'x' }, text] }
    const current = { messages: [question, answer] }
    const withoutThinking = { messages: [question, { role: 'assistant', content: [text] }] }
    expect(
      estimateInputTokens(current, 'anthropic-messages')! - estimateInputTokens(withoutThinking, 'anthropic-messages')!,
    ).toBe(countTokens(thought))
    // the next user turn drops it
    const next = { messages: [question, answer, { role: 'user', content: 'Why?' }] }
    expect(estimateInputTokens(next, 'anthropic-messages')).toBe(
      estimateInputTokens(withoutThinking, 'anthropic-messages')! + countTokens('Why?'),
    )
    // a tool result does not open a new turn
    const toolTurn = {
      messages: [
        question,
        answer,
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'ok' }] },
      ],
    }
    expect(estimateInputTokens(toolTurn, 'anthropic-messages')).toBe(
      estimateInputTokens(current, 'anthropic-messages')! + 1,
    )
  })

  it('unknown shapes give undefined', () => {
    for (const body of [null, undefined, 42, 'text', [], [{ role: 'user' }], {}, { model: 'x' }, { messages: 'hi' }]) {
      expect(estimateInputTokens(body)).toBeUndefined()
    }
    expect(estimateInputTokens(geminiExample, 'openai-chat')).toBeUndefined()
    expect(estimateInputTokens(chatExample, 'gemini')).toBeUndefined()
    expect(estimateInputTokens({ contents: 'x' }, 'gemini')).toBeUndefined()
    expect(estimateInputTokens({ input: 3 }, 'openai-responses')).toBeUndefined()
  })

  it('text that looks like a special token is counted as text', () => {
    const body = { messages: [{ role: 'user', content: 'say <|endoftext|> and <|im_start|> now' }] }
    expect(estimateInputTokens(body, 'openai-chat')).toBe(
      3 + 1 + 3 + countTokens('say <|endoftext|> and <|im_start|> now', { disallowedSpecial: new Set() }),
    )
  })

  it('a body too deep to stringify gives undefined, never a throw', () => {
    let deep: unknown = 'leaf'
    for (let i = 0; i < 200_000; i++) deep = { a: deep }
    const body = { messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 't', input: deep }] }] }
    expect(() => estimateInputTokens(body, 'anthropic-messages')).not.toThrow()
    const result = estimateInputTokens(body, 'anthropic-messages')
    expect(result === undefined || Number.isInteger(result)).toBe(true)
    expect(estimateInputTokens({ messages: [{ role: 'user', content: [{ type: 'tool_use', input: 1n }] }] })).toBe(
      undefined,
    )
  })

  it('long runs without a break stay linear: 200,000 random letters in well under two seconds', () => {
    let text = ''
    let seed = 7
    for (let i = 0; i < 200_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      text += String.fromCharCode(97 + (seed % 26))
    }
    const started = performance.now()
    const tokens = estimateOutputTokens(text)
    expect(performance.now() - started).toBeLessThan(2000)
    // each 64-letter slice costs at most one token more than the whole run would
    const sample = text.slice(0, 4096)
    const exact = countTokens(sample)
    const cut = estimateOutputTokens(sample)
    expect(cut).toBeGreaterThanOrEqual(exact)
    expect(cut - exact).toBeLessThanOrEqual(4096 / 64)
    expect(tokens).toBeGreaterThan(200_000 / 8)
  })
})

describe('estimateInputTokens: properties', () => {
  const dialects = [
    undefined,
    'anthropic-messages',
    'openai-chat',
    'openai-responses',
    'bedrock-converse',
    'bedrock-invoke',
    'gemini',
    'ollama',
  ]

  const isCount = (value: unknown) => value === undefined || (Number.isInteger(value) && (value as number) >= 0)

  it('never throws and returns a non-negative integer or undefined, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(...dialects), (body, dialect) => {
        expect(isCount(estimateInputTokens(body, dialect))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('never throws on bodies shaped like a dialect’s with garbage inside', () => {
    const garbage = fc.oneof(fc.jsonValue(), fc.anything())
    const body = fc.record(
      {
        messages: fc.array(fc.record({ role: garbage, content: fc.oneof(fc.string(), fc.array(garbage)) })),
        contents: fc.array(fc.record({ parts: fc.array(garbage) })),
        input: fc.oneof(fc.string(), fc.array(garbage)),
        system: garbage,
        tools: fc.array(garbage),
        toolConfig: garbage,
        prompt: fc.string(),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(body, fc.constantFrom(...dialects), (b, dialect) => {
        expect(isCount(estimateInputTokens(b, dialect))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('adding a message never lowers the estimate', () => {
    const text = fc.string({ maxLength: 40 })
    const chat = fc.array(fc.record({ role: fc.constantFrom('user', 'assistant', 'system'), content: text }))
    const turns = fc.array(
      fc.record({
        role: fc.constantFrom('user', 'assistant'),
        content: fc.oneof(text, fc.array(fc.record({ type: fc.constant('text'), text }))),
      }),
    )
    const converse = fc.array(
      fc.record({ role: fc.constantFrom('user', 'assistant'), content: fc.array(fc.record({ text })) }),
    )
    const gemini = fc.array(fc.record({ role: fc.constantFrom('user', 'model'), parts: fc.array(fc.record({ text })) }))
    const grows = (dialect: string, key: string, messages: unknown[], extra: unknown, rest: object = {}) => {
      const before = estimateInputTokens({ ...rest, [key]: messages }, dialect)!
      const after = estimateInputTokens({ ...rest, [key]: [...messages, extra] }, dialect)!
      expect(after).toBeGreaterThanOrEqual(before)
    }
    fc.assert(
      fc.property(chat, chat, (ms, [extra]) => {
        if (extra === undefined) return
        grows('openai-chat', 'messages', ms, extra)
        grows('ollama', 'messages', ms, extra)
        grows('openai-responses', 'input', ms, extra)
      }),
    )
    fc.assert(
      fc.property(turns, turns, (ms, [extra]) => {
        if (extra !== undefined) grows('anthropic-messages', 'messages', ms, extra, { system: 'Be brief.' })
      }),
    )
    fc.assert(
      fc.property(converse, converse, (ms, [extra]) => {
        if (extra !== undefined) grows('bedrock-converse', 'messages', ms, extra)
      }),
    )
    fc.assert(
      fc.property(gemini, gemini, (ms, [extra]) => {
        if (extra !== undefined) grows('gemini', 'contents', ms, extra)
      }),
    )
  })
})

describe('estimateOutputTokens', () => {
  it('counts generated text with no framing', () => {
    expect(estimateOutputTokens('Here is a short answer: the café on the corner opens at nine.')).toBe(15)
    expect(estimateOutputTokens('{"city":"Paris"}')).toBe(countTokens('{"city":"Paris"}'))
    expect(estimateOutputTokens('')).toBe(0)
  })

  it('never throws: any string gives a non-negative integer, anything else 0', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const n = estimateOutputTokens(text)
        expect(Number.isInteger(n) && n >= 0).toBe(true)
      }),
    )
    expect(estimateOutputTokens(undefined as unknown as string)).toBe(0)
    expect(estimateOutputTokens({} as unknown as string)).toBe(0)
  })
})

/** Bodies the Node carrier tests share. */

/** A Chat Completions body from a bridge that left the cache out of `prompt_tokens`. */
export const chatBody = JSON.stringify({
  id: 'c1',
  object: 'chat.completion',
  model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hé' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 200, completion_tokens: 10, total_tokens: 1010, cache_read_input_tokens: 800 },
})

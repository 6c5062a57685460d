/**
 * SSE serialization as the providers write it (docs/transport.md#sse-framing): an optional `event:` line, one
 * `data:` line of compact JSON, and a blank line. Anthropic and OpenAI Responses name their
 * events; OpenAI Chat Completions sends data-only events and ends with `data: [DONE]`.
 */
export function sseEvent(data: unknown, event?: string): string {
  const payload = typeof data === 'string' ? data : JSON.stringify(data)
  return (event === undefined ? '' : `event: ${event}\n`) + `data: ${payload}\n\n`
}

/** A short deterministic id fragment, so a scenario's bytes are the same on every run. */
export function idFragment(seq: number, length = 24): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789'
  return fragment(seq, length, (state) => alphabet[state % alphabet.length]!)
}

/** The same in hex digits (taken from the generator's higher bits: its lowest four repeat every 16). */
export function hexFragment(seq: number, length: number): string {
  return fragment(seq, length, (state) => ((state >>> 16) & 15).toString(16))
}

function fragment(seq: number, length: number, char: (state: number) => string): string {
  let state = (seq + 1) * 2654435761
  let out = ''
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648
    out += char(state)
  }
  return out
}

/** Cuts a reply into word-sized deltas, the granularity real streams use. */
export function textDeltas(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [text]
}

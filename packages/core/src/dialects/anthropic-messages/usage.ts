import { count, isObject, label, type JsonObject, type Usage, type UsageSources } from '../../usage.js'

/**
 * Anthropic Messages usage ⇄ canonical buckets.
 * `input_tokens` excludes cache reads and writes, so the buckets map one to one
 * (docs/dialects/anthropic-messages.md#input-excludes-the-cache).
 */
export function fromAnthropicUsage(native: JsonObject, at: string): { usage: Usage; sources: UsageSources } {
  const usage: Usage = {}
  const sources: UsageSources = {}
  const where = labelsAt(at)
  // Member by member, in one order (not through a keyed helper): this runs for every usage event.
  let n = count(native.input_tokens)
  if (n !== undefined) {
    usage.input = n
    sources.input = where.input
  }
  if ((n = count(native.cache_read_input_tokens)) !== undefined) {
    usage.cacheRead = n
    sources.cacheRead = where.cacheRead
  }
  if ((n = count(native.cache_creation_input_tokens)) !== undefined) {
    usage.cacheWrite = n
    sources.cacheWrite = where.cacheWrite
  }
  const split = native.cache_creation
  if (isObject(split)) {
    if ((n = count(split.ephemeral_5m_input_tokens)) !== undefined) {
      usage.cacheWrite5m = n
      sources.cacheWrite5m = where.cacheWrite5m
    }
    if ((n = count(split.ephemeral_1h_input_tokens)) !== undefined) {
      usage.cacheWrite1h = n
      sources.cacheWrite1h = where.cacheWrite1h
    }
  }
  if ((n = count(native.output_tokens)) !== undefined) {
    usage.output = n
    sources.output = where.output
  }
  const details = native.output_tokens_details
  if (isObject(details) && (n = count(details.thinking_tokens)) !== undefined) {
    usage.reasoning = n
    sources.reasoning = where.reasoning
  }
  return { usage, sources }
}

const PATHS: Required<UsageSources> = {
  input: 'input_tokens',
  cacheRead: 'cache_read_input_tokens',
  cacheWrite: 'cache_creation_input_tokens',
  cacheWrite5m: 'cache_creation.ephemeral_5m_input_tokens',
  cacheWrite1h: 'cache_creation.ephemeral_1h_input_tokens',
  output: 'output_tokens',
  reasoning: 'output_tokens_details.thinking_tokens',
}

const labelSets = new Map<string, Required<UsageSources>>()

/** Every field's source label at `at` (`message_delta.usage.input_tokens`, …), made once per `at`. */
function labelsAt(at: string): Required<UsageSources> {
  let set = labelSets.get(at)
  if (set === undefined) {
    set = {
      input: label(at, PATHS.input),
      cacheRead: label(at, PATHS.cacheRead),
      cacheWrite: label(at, PATHS.cacheWrite),
      cacheWrite5m: label(at, PATHS.cacheWrite5m),
      cacheWrite1h: label(at, PATHS.cacheWrite1h),
      output: label(at, PATHS.output),
      reasoning: label(at, PATHS.reasoning),
    }
    labelSets.set(at, set)
  }
  return set
}

/**
 * Writes the known canonical values into an Anthropic usage object (a copy; key order kept, new keys appended).
 * Only known values are written: the SDK overwrites on presence, so a written 0 would erase a correct
 * number (docs/peer-bugs.md row 31). The `cache_creation` TTL split is written only with `split` (on
 * `message_start` and a whole body, never on `message_delta`, which never carries it: the SDK keeps the
 * `message_start` one), and only when it is known (docs/dialects/anthropic-messages.md#ttl-split).
 * `output_tokens_details` and `server_tool_use` ride along as they came; `thinking_tokens` is written only
 * into an `output_tokens_details` the block already has (docs/dialects/anthropic-messages.md#thinking-and-server-tools).
 */
export function toAnthropicUsage(native: JsonObject, usage: Usage, split = false): JsonObject {
  const out = writeAnthropicUsage(native, usage, split)
  return out === native ? { ...native } : out
}

/**
 * {@link toAnthropicUsage}, but `native` itself when nothing changes: most usage events need no rewrite,
 * and the reader then makes no copy (and the processor lists no change) for them.
 */
export function writeAnthropicUsage(native: JsonObject, usage: Usage, split = false): JsonObject {
  let out = split ? writeSplit(native, usage) : undefined
  if (usage.input !== undefined && native.input_tokens !== usage.input)
    (out ??= { ...native }).input_tokens = usage.input
  if (usage.cacheWrite !== undefined && native.cache_creation_input_tokens !== usage.cacheWrite)
    (out ??= { ...native }).cache_creation_input_tokens = usage.cacheWrite
  if (usage.cacheRead !== undefined && native.cache_read_input_tokens !== usage.cacheRead)
    (out ??= { ...native }).cache_read_input_tokens = usage.cacheRead
  if (usage.output !== undefined && native.output_tokens !== usage.output)
    (out ??= { ...native }).output_tokens = usage.output
  const details = native.output_tokens_details
  if (usage.reasoning !== undefined && isObject(details) && details.thinking_tokens !== usage.reasoning) {
    ;(out ??= { ...native }).output_tokens_details = { ...details, thinking_tokens: usage.reasoning }
  }
  return out ?? native
}

/**
 * A copy of `native` with the known TTL split in `cache_creation` (other members of a `cache_creation`
 * kept), or undefined when it changes nothing. The ledger only holds a split that adds up to the cache
 * write (docs/usage-model.md#stale-ttl-split), so when the write is known, the half not reported is 0.
 */
function writeSplit(native: JsonObject, usage: Usage): JsonObject | undefined {
  const { cacheWrite5m: m5, cacheWrite1h: h1, cacheWrite: total } = usage
  if (m5 === undefined && h1 === undefined) return undefined
  const was = isObject(native.cache_creation) ? native.cache_creation : undefined
  const next: JsonObject = { ...was }
  const implied = total !== undefined ? 0 : undefined
  const five = m5 ?? implied
  const hour = h1 ?? implied
  if (five !== undefined) next.ephemeral_5m_input_tokens = five
  if (hour !== undefined) next.ephemeral_1h_input_tokens = hour
  if (
    was &&
    was.ephemeral_5m_input_tokens === next.ephemeral_5m_input_tokens &&
    was.ephemeral_1h_input_tokens === next.ephemeral_1h_input_tokens
  )
    return undefined
  return { ...native, cache_creation: next }
}

/**
 * The server-tool request counts of one message (`server_tool_use.web_search_requests`, …). They are
 * cumulative like the token counts, and the SDK overwrites them on presence, so a 0 that follows a
 * non-zero count is a translator's "unknown" and is written back as the count known
 * (docs/dialects/anthropic-messages.md#thinking-and-server-tools).
 */
export class ServerToolCounts {
  private known: Map<string, number> | undefined // made by the first message that uses a server tool

  observe(native: JsonObject): void {
    const tools = native.server_tool_use
    if (!isObject(tools)) return
    const known = (this.known ??= new Map())
    for (const key in tools) {
      const n = count(tools[key])
      if (n === undefined || (n === 0 && (known.get(key) ?? 0) > 0)) continue
      known.set(key, n)
    }
  }

  /** `out` with every zeroed count that is known replaced by the count known (a copy when one is). */
  restore(out: JsonObject): JsonObject {
    const tools = out.server_tool_use
    if (this.known === undefined || this.known.size === 0 || !isObject(tools)) return out
    let fixed: JsonObject | undefined
    for (const key in tools) {
      const known = this.known.get(key)
      if (known !== undefined && known > 0 && tools[key] === 0) (fixed ??= { ...tools })[key] = known
    }
    return fixed ? { ...out, server_tool_use: fixed } : out
  }
}

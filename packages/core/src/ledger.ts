import { USAGE_FIELDS, type Usage, type UsageField, type UsageSources } from './usage.js'

/**
 * Who observed a value. The upstream tap (the provider's own answer, before any translation) beats the
 * response stream, which beats a request-side estimate (docs/usage-model.md#source-ranking).
 */
export type SourceKind = 'estimate' | 'stream' | 'tap'

/** A source's rank, compared rather than looked up: a lookup by a varying key is a hash probe in V8. */
const rankOf = (kind: SourceKind): number => (kind === 'tap' ? 2 : kind === 'stream' ? 1 : 0)

interface Entry {
  value: number
  source: string
  kind: SourceKind
}

/**
 * One per request: observations from every source, resolved into one canonical usage.
 * Usage blocks are cumulative snapshots, so a later observation of the same kind replaces an earlier one
 * (set, never add: docs/peer-bugs.md rows 26, 27, 42). One exception: a 0 that follows a non-zero value of the
 * same counter is a translator writing "unknown" as 0, so it never erases the value known.
 */
export class Ledger {
  // One slot per canonical field, in USAGE_FIELDS order: a fixed shape, so reading and writing a
  // ledger never goes through a hash table or a keyed store (it runs once per usage event).
  private readonly slots: Array<Entry | undefined> = [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]

  /**
   * Records what `kind` observed. With `whole`, the block is one snapshot of the prompt: a prompt total
   * stated without its cache breakdown keeps the breakdown known when the totals agree, and otherwise
   * replaces it, so an earlier block's cache count is never added to a later block's total
   * (docs/usage-model.md#one-block-one-snapshot).
   */
  observe(kind: SourceKind, usage: Usage, sources: UsageSources, whole = false): void {
    if (whole && usage.input !== undefined) {
      const read = this.unknownZero(kind, CACHE_READ, usage.cacheRead)
      const write = this.unknownZero(kind, CACHE_WRITE, usage.cacheWrite)
      if ((read || write) && (read || usage.cacheRead === undefined) && (write || usage.cacheWrite === undefined)) {
        // The block's cache counts are "unknown" written as 0 (a known count does not fall to 0): its
        // prompt count is a total without a breakdown. Unless it is the input known already (a block
        // whose prompt leaves the cache out), it is read as such a total, not as a prompt without cache.
        const { cacheRead: _read, cacheWrite: _write, cacheWrite5m: _5m, cacheWrite1h: _1h, ...rest } = usage
        usage = usage.input === this.slots[INPUT]?.value ? rest : this.restated(kind, rest)
      } else if (usage.cacheRead === undefined && usage.cacheWrite === undefined) {
        usage = this.restated(kind, usage)
      }
    }
    // Field by field, by name: a loop over USAGE_FIELDS reads `usage[field]` with a key that changes at
    // every turn, which V8 serves from a shared hash table (its megamorphic cache) at every read.
    const rank = rankOf(kind)
    this.put(INPUT, usage.input, sources.input, kind, rank)
    this.put(CACHE_READ, usage.cacheRead, sources.cacheRead, kind, rank)
    this.put(CACHE_WRITE, usage.cacheWrite, sources.cacheWrite, kind, rank)
    this.put(WRITE_5M, usage.cacheWrite5m, sources.cacheWrite5m, kind, rank)
    this.put(WRITE_1H, usage.cacheWrite1h, sources.cacheWrite1h, kind, rank)
    this.put(OUTPUT, usage.output, sources.output, kind, rank)
    this.put(REASONING, usage.reasoning, sources.reasoning, kind, rank)
  }

  private put(i: number, value: number | undefined, source: string | undefined, kind: SourceKind, rank: number): void {
    if (value === undefined) return
    const known = this.slots[i]
    if (known) {
      if (rankOf(known.kind) > rank) return
      if (known.kind === kind && value === 0 && known.value > 0) return
      // An entry is the ledger's alone: updated in place, not allocated again for every usage event.
      known.value = value
      known.source = source ?? kind
      known.kind = kind
      return
    }
    this.slots[i] = { value, source: source ?? kind, kind }
  }

  /** `value` is a 0 that `kind` states for slot `i` after it knew it to be more: "unknown", not 0. */
  private unknownZero(kind: SourceKind, i: number, value: number | undefined): boolean {
    const known = this.slots[i]
    return value === 0 && known !== undefined && known.kind === kind && known.value > 0
  }

  /** `usage` without its prompt part when it restates the known prompt total, else with the cache cleared. */
  private restated(kind: SourceKind, usage: Usage): Usage {
    const input = this.slots[INPUT]
    if (!input || rankOf(input.kind) > rankOf(kind)) return usage
    const cacheRead = this.slots[CACHE_READ]?.value ?? 0
    const cacheWrite = this.slots[CACHE_WRITE]?.value ?? 0
    if (cacheRead + cacheWrite === 0) return usage
    if (input.value + cacheRead + cacheWrite === usage.input) {
      const { input: _restated, ...rest } = usage
      return rest
    }
    // A new prompt total without a breakdown: the breakdown known belongs to another total.
    for (const i of PROMPT_PARTS) {
      const entry = this.slots[i]
      if (entry && rankOf(entry.kind) <= rankOf(kind)) this.slots[i] = undefined
    }
    return usage
  }

  /** Who observed the value known for `field`. */
  kindOf(field: UsageField): SourceKind | undefined {
    return this.slots[USAGE_FIELDS.indexOf(field)]?.kind
  }

  get(field: UsageField): number | undefined {
    return this.slots[USAGE_FIELDS.indexOf(field)]?.value
  }

  /** The best usage known now; absent fields are not known. */
  usage(): Usage {
    const usage: Usage = {}
    const slots = this.slots
    const stale = this.staleSplit()
    let entry = slots[INPUT]
    if (entry) usage.input = entry.value
    if ((entry = slots[CACHE_READ])) usage.cacheRead = entry.value
    if ((entry = slots[CACHE_WRITE])) usage.cacheWrite = entry.value
    if (!stale) {
      if ((entry = slots[WRITE_5M])) usage.cacheWrite5m = entry.value
      if ((entry = slots[WRITE_1H])) usage.cacheWrite1h = entry.value
    }
    if ((entry = slots[OUTPUT])) usage.output = entry.value
    if ((entry = slots[REASONING])) usage.reasoning = entry.value
    return usage
  }

  sources(): UsageSources {
    // Written out as usage() is: a store by a varying key adds each property through V8's runtime.
    const sources: UsageSources = {}
    const slots = this.slots
    const stale = this.staleSplit()
    let entry = slots[INPUT]
    if (entry) sources.input = entry.source
    if ((entry = slots[CACHE_READ])) sources.cacheRead = entry.source
    if ((entry = slots[CACHE_WRITE])) sources.cacheWrite = entry.source
    if (!stale) {
      if ((entry = slots[WRITE_5M])) sources.cacheWrite5m = entry.source
      if ((entry = slots[WRITE_1H])) sources.cacheWrite1h = entry.source
    }
    if ((entry = slots[OUTPUT])) sources.output = entry.source
    if ((entry = slots[REASONING])) sources.reasoning = entry.source
    return sources
  }

  /**
   * A cache-write TTL split that no longer adds up to the cache write is left out: Anthropic sends the
   * split only on `message_start`, and a later `message_delta` may raise the total (docs/dialects/anthropic-messages.md#cumulative-snapshots), so the
   * split is stale and would price part of the write at nothing.
   */
  private staleSplit(): boolean {
    const total = this.slots[CACHE_WRITE]?.value
    if (total === undefined) return false
    return (this.slots[WRITE_5M]?.value ?? 0) + (this.slots[WRITE_1H]?.value ?? 0) !== total
  }
}

const INPUT = USAGE_FIELDS.indexOf('input')
const CACHE_READ = USAGE_FIELDS.indexOf('cacheRead')
const CACHE_WRITE = USAGE_FIELDS.indexOf('cacheWrite')
const WRITE_5M = USAGE_FIELDS.indexOf('cacheWrite5m')
const WRITE_1H = USAGE_FIELDS.indexOf('cacheWrite1h')
const OUTPUT = USAGE_FIELDS.indexOf('output')
const REASONING = USAGE_FIELDS.indexOf('reasoning')
const PROMPT_PARTS: readonly number[] = [CACHE_READ, CACHE_WRITE, WRITE_5M, WRITE_1H]

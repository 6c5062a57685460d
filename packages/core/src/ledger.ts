import { USAGE_FIELDS, type Usage, type UsageField, type UsageSources } from './usage.js'

/**
 * Who observed a value. The upstream tap (the provider's own answer, before any translation) beats the
 * response stream, which beats a request-side estimate (docs/usage-model.md#source-ranking).
 */
export type SourceKind = 'estimate' | 'stream' | 'tap'

/** A source's rank, compared rather than looked up: a lookup by a varying key is a hash probe in V8. */
const rankOf = (kind: SourceKind): number => (kind === 'tap' ? 2 : kind === 'stream' ? 1 : 0)

// What the ledger knows of one canonical field: three members of one array per field, in USAGE_FIELDS
// order: its value, who said it (a source label) and that source's kind, undefined while not known.
const VALUE = 0
const SOURCE = 1
const KIND = 2
const WIDTH = 3

const NOTHING_KNOWN: ReadonlyArray<undefined> = Array.from({ length: USAGE_FIELDS.length * WIDTH }, () => undefined)

/**
 * One per request: observations from every source, resolved into one canonical usage.
 * Usage blocks are cumulative snapshots, so a later observation of the same kind replaces an earlier one
 * (set, never add: docs/peer-bugs.md rows 26, 27, 42). One exception: a 0 that follows a non-zero value of the
 * same counter is a translator writing "unknown" as 0, so it never erases the value known.
 */
export class Ledger {
  // Every field in one flat array of fixed length, not an object per field: reading and writing a ledger
  // never goes through a hash table or a keyed store (it runs once per usage event), and a request
  // makes one array where an object per field, each with its value boxed, made thirteen objects
  // (bench/README.md, row 5).
  private readonly slots: Array<number | string | undefined> = NOTHING_KNOWN.slice()

  /** The kind that observed the value of field `i`; undefined while none is known. */
  private kindAt(i: number): SourceKind | undefined {
    return this.slots[i * WIDTH + KIND] as SourceKind | undefined
  }

  /** The value known for field `i`. */
  private valueAt(i: number): number | undefined {
    return this.slots[i * WIDTH + VALUE] as number | undefined
  }

  private sourceAt(i: number): string | undefined {
    return this.slots[i * WIDTH + SOURCE] as string | undefined
  }

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
        usage = usage.input === this.valueAt(INPUT) ? rest : this.restated(kind, rest)
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
    const known = this.kindAt(i)
    if (known !== undefined) {
      if (rankOf(known) > rank) return
      if (known === kind && value === 0 && this.valueAt(i)! > 0) return
    }
    const at = i * WIDTH
    this.slots[at + VALUE] = value
    this.slots[at + SOURCE] = source ?? kind
    this.slots[at + KIND] = kind
  }

  private forget(i: number): void {
    const at = i * WIDTH
    this.slots[at + VALUE] = undefined
    this.slots[at + SOURCE] = undefined
    this.slots[at + KIND] = undefined
  }

  /** `value` is a 0 that `kind` states for slot `i` after it knew it to be more: "unknown", not 0. */
  private unknownZero(kind: SourceKind, i: number, value: number | undefined): boolean {
    return value === 0 && this.kindAt(i) === kind && this.valueAt(i)! > 0
  }

  /** `usage` without its prompt part when it restates the known prompt total, else with the cache cleared. */
  private restated(kind: SourceKind, usage: Usage): Usage {
    const input = this.valueAt(INPUT)
    const inputKind = this.kindAt(INPUT)
    if (input === undefined || inputKind === undefined || rankOf(inputKind) > rankOf(kind)) return usage
    const cacheRead = this.valueAt(CACHE_READ) ?? 0
    const cacheWrite = this.valueAt(CACHE_WRITE) ?? 0
    if (cacheRead + cacheWrite === 0) return usage
    if (input + cacheRead + cacheWrite === usage.input) {
      const { input: _restated, ...rest } = usage
      return rest
    }
    // A new prompt total without a breakdown: the breakdown known belongs to another total.
    for (const i of PROMPT_PARTS) {
      const known = this.kindAt(i)
      if (known !== undefined && rankOf(known) <= rankOf(kind)) this.forget(i)
    }
    return usage
  }

  /** Who observed the value known for `field`. */
  kindOf(field: UsageField): SourceKind | undefined {
    return this.kindAt(USAGE_FIELDS.indexOf(field))
  }

  get(field: UsageField): number | undefined {
    return this.valueAt(USAGE_FIELDS.indexOf(field))
  }

  /** The best usage known now; absent fields are not known. */
  usage(): Usage {
    const usage: Usage = {}
    const stale = this.staleSplit()
    let n = this.valueAt(INPUT)
    if (n !== undefined) usage.input = n
    if ((n = this.valueAt(CACHE_READ)) !== undefined) usage.cacheRead = n
    if ((n = this.valueAt(CACHE_WRITE)) !== undefined) usage.cacheWrite = n
    if (!stale) {
      if ((n = this.valueAt(WRITE_5M)) !== undefined) usage.cacheWrite5m = n
      if ((n = this.valueAt(WRITE_1H)) !== undefined) usage.cacheWrite1h = n
    }
    if ((n = this.valueAt(OUTPUT)) !== undefined) usage.output = n
    if ((n = this.valueAt(REASONING)) !== undefined) usage.reasoning = n
    return usage
  }

  sources(): UsageSources {
    // Written out as usage() is: a store by a varying key adds each property through V8's runtime.
    const sources: UsageSources = {}
    const stale = this.staleSplit()
    let source = this.sourceAt(INPUT)
    if (source !== undefined) sources.input = source
    if ((source = this.sourceAt(CACHE_READ)) !== undefined) sources.cacheRead = source
    if ((source = this.sourceAt(CACHE_WRITE)) !== undefined) sources.cacheWrite = source
    if (!stale) {
      if ((source = this.sourceAt(WRITE_5M)) !== undefined) sources.cacheWrite5m = source
      if ((source = this.sourceAt(WRITE_1H)) !== undefined) sources.cacheWrite1h = source
    }
    if ((source = this.sourceAt(OUTPUT)) !== undefined) sources.output = source
    if ((source = this.sourceAt(REASONING)) !== undefined) sources.reasoning = source
    return sources
  }

  /**
   * A cache-write TTL split that no longer adds up to the cache write is left out: Anthropic sends the
   * split only on `message_start`, and a later `message_delta` may raise the total (docs/dialects/anthropic-messages.md#cumulative-snapshots), so the
   * split is stale and would price part of the write at nothing.
   */
  private staleSplit(): boolean {
    const total = this.valueAt(CACHE_WRITE)
    if (total === undefined) return false
    return (this.valueAt(WRITE_5M) ?? 0) + (this.valueAt(WRITE_1H) ?? 0) !== total
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

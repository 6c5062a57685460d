import { USAGE_FIELDS, type Usage, type UsageField, type UsageSources } from './usage.js'

/**
 * Who observed a value. The upstream tap (the provider's own answer, before any translation) beats the
 * response stream, which beats a request-side estimate (docs/usage-model.md#source-ranking).
 */
export type SourceKind = 'estimate' | 'stream' | 'tap'

const RANK: Record<SourceKind, number> = { estimate: 0, stream: 1, tap: 2 }

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
  private readonly entries = new Map<UsageField, Entry>()

  /**
   * Records what `kind` observed. With `whole`, the block is one snapshot of the prompt: a prompt total
   * stated without its cache breakdown keeps the breakdown known when the totals agree, and otherwise
   * replaces it, so an earlier block's cache count is never added to a later block's total
   * (docs/usage-model.md#one-block-one-snapshot).
   */
  observe(kind: SourceKind, usage: Usage, sources: UsageSources, whole = false): void {
    if (whole && usage.input !== undefined && usage.cacheRead === undefined && usage.cacheWrite === undefined) {
      usage = this.restated(kind, usage)
    }
    for (const field of USAGE_FIELDS) {
      const value = usage[field]
      if (value === undefined) continue
      const known = this.entries.get(field)
      if (known) {
        if (RANK[known.kind] > RANK[kind]) continue
        if (known.kind === kind && value === 0 && known.value > 0) continue
      }
      this.entries.set(field, { value, source: sources[field] ?? kind, kind })
    }
  }

  /** `usage` without its prompt part when it restates the known prompt total, else with the cache cleared. */
  private restated(kind: SourceKind, usage: Usage): Usage {
    const input = this.entries.get('input')
    if (!input || RANK[input.kind] > RANK[kind]) return usage
    const cacheRead = this.entries.get('cacheRead')?.value ?? 0
    const cacheWrite = this.entries.get('cacheWrite')?.value ?? 0
    if (cacheRead + cacheWrite === 0) return usage
    if (input.value + cacheRead + cacheWrite === usage.input) {
      const { input: _restated, ...rest } = usage
      return rest
    }
    // A new prompt total without a breakdown: the breakdown known belongs to another total.
    for (const field of PROMPT_PARTS) {
      const entry = this.entries.get(field)
      if (entry && RANK[entry.kind] <= RANK[kind]) this.entries.delete(field)
    }
    return usage
  }

  /** Who observed the value known for `field`. */
  kindOf(field: UsageField): SourceKind | undefined {
    return this.entries.get(field)?.kind
  }

  get(field: UsageField): number | undefined {
    return this.entries.get(field)?.value
  }

  /** The best usage known now; absent fields are not known. */
  usage(): Usage {
    const usage: Usage = {}
    const stale = this.staleSplit()
    for (const [field, entry] of this.entries) if (!stale || !isSplit(field)) usage[field] = entry.value
    return usage
  }

  sources(): UsageSources {
    const sources: UsageSources = {}
    const stale = this.staleSplit()
    for (const [field, entry] of this.entries) if (!stale || !isSplit(field)) sources[field] = entry.source
    return sources
  }

  /**
   * A cache-write TTL split that no longer adds up to the cache write is left out: Anthropic sends the
   * split only on `message_start`, and a later `message_delta` may raise the total (docs/dialects/anthropic-messages.md#cumulative-snapshots), so the
   * split is stale and would price part of the write at nothing.
   */
  private staleSplit(): boolean {
    const total = this.entries.get('cacheWrite')?.value
    if (total === undefined) return false
    return (this.entries.get('cacheWrite5m')?.value ?? 0) + (this.entries.get('cacheWrite1h')?.value ?? 0) !== total
  }
}

const PROMPT_PARTS: readonly UsageField[] = ['cacheRead', 'cacheWrite', 'cacheWrite5m', 'cacheWrite1h']

const isSplit = (field: UsageField): boolean => field === 'cacheWrite5m' || field === 'cacheWrite1h'

/**
 * The cardinality guard: every label whose values come from traffic (a model a client named, a route, an
 * attribute) keeps at most a fixed number of distinct values; the rest become `other`. A series lives as
 * long as the process, so an unbounded label is a memory leak (docs/metrics.md#cardinality).
 */

/** The value that stands for every value past a label's cap, or outside its allow-list. */
export const OTHER = 'other'

/** Longer values are cut: a model name comes from the request body, whatever its length. */
export const MAX_VALUE_LENGTH = 128

/** Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, and `__` is reserved. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export function isLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith('__')
}

export interface LabelGuard {
  /** The value to export for `label`: itself while it fits, else `other`; `overflowed` says which it was. */
  value(label: string, raw: string): string
}

export interface GuardOptions {
  maxValuesPerLabel: number
  allowedValues: Readonly<Record<string, readonly string[] | undefined>>
  /** Told each time a value is folded into `other`. */
  onOverflow(label: string): void
}

export function createLabelGuard({ maxValuesPerLabel, allowedValues, onOverflow }: GuardOptions): LabelGuard {
  const seen = new Map<string, Set<string>>()
  const allowed = new Map<string, ReadonlySet<string>>()
  for (const [label, values] of Object.entries(allowedValues)) if (values) allowed.set(label, new Set(values))
  return {
    value(label, raw) {
      const value = raw.length > MAX_VALUE_LENGTH ? raw.slice(0, MAX_VALUE_LENGTH) : raw
      const allow = allowed.get(label)
      if (allow) {
        if (allow.has(value)) return value
        onOverflow(label)
        return OTHER
      }
      let values = seen.get(label)
      if (!values) seen.set(label, (values = new Set()))
      if (values.has(value)) return value
      if (values.size < maxValuesPerLabel) {
        values.add(value)
        return value
      }
      onOverflow(label)
      return OTHER
    },
  }
}

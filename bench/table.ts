/** One line of the bench table. `result` is PASS/MISS against a target, or `info` when there is none. */
export interface Row {
  id: string
  what: string
  value: string
  baseline?: string
  ratio?: string
  target?: string
  result: 'PASS' | 'MISS' | 'info'
  /** The figures behind the cells, unrounded, for bench/results/latest.json. */
  raw?: Record<string, unknown>
  /**
   * Set when a correctness check of the bench itself failed (a bad response, records ≠ responses): the
   * figures of that row measure something broken, so `pnpm bench` exits non-zero, unlike for a MISS.
   */
  check?: string
}

export const gbps = (bytes: number, ns: number): number => bytes / ns // bytes per ns = GB/s
export const fmt = (n: number, digits = 2): string => n.toFixed(digits)
export const kib = (bytes: number): string => `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 2 : 1)} KiB`
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MiB`

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function formatTable(rows: Row[]): string {
  const head: Row = {
    id: '#',
    what: 'measurement',
    value: 'value',
    baseline: 'baseline',
    ratio: 'ratio',
    target: 'target',
    result: 'info',
  }
  const cols: (keyof Row)[] = ['id', 'what', 'value', 'baseline', 'ratio', 'target', 'result']
  const cell = (r: Row, c: keyof Row) => (r === head && c === 'result' ? 'result' : String(r[c] ?? ''))
  const width = cols.map((c) => Math.max(...[head, ...rows].map((r) => cell(r, c).length)))
  const line = (r: Row) =>
    cols
      .map((c, i) => cell(r, c).padEnd(width[i]!))
      .join('  ')
      .trimEnd()
  return [line(head), width.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** One line of the bench table. `result` is PASS/MISS against a target, or `info` when there is none. */
export interface Row {
  id: string
  what: string
  value: string
  baseline?: string
  ratio?: string
  target?: string
  result: 'PASS' | 'MISS' | 'info'
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

export function printTable(rows: Row[]): void {
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
  console.log(line(head))
  console.log(width.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
}

/** Reading the Prometheus text exposition in tests. */

/** The sum of every sample of `name` whose labels include `labels` (`undefined` when there is none). */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const found: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found[key!] = value!
    }
    if (Object.entries(labels).every(([key, value]) => (found[key] ?? '') === value))
      sum = (sum ?? 0) + Number(match[3])
  }
  return sum
}

/**
 * Replaces one member of a JSON text in place, leaving every other byte as it was: text content,
 * escapes, number spellings and key order of the rest of an event survive a usage rewrite.
 */

const WS = new Set([0x20, 0x09, 0x0a, 0x0d])

function skipWs(text: string, i: number): number {
  while (i < text.length && WS.has(text.charCodeAt(i))) i++
  return i
}

function skipString(text: string, i: number): number {
  // text[i] is the opening quote
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j)
    if (c === 0x5c /* \ */) j++
    else if (c === 0x22 /* " */) return j + 1
  }
  return -1
}

/** Index just past the JSON value starting at `i` (after whitespace), or -1. */
function skipValue(text: string, i: number): number {
  i = skipWs(text, i)
  const c = text.charCodeAt(i)
  if (c === 0x22) return skipString(text, i)
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j)
      if (d === 0x22) {
        j = skipString(text, j) - 1
        if (j < 0) return -1
      } else if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d || d === 0x5d) {
        depth--
        if (depth === 0) return j + 1
      }
    }
    return -1
  }
  let j = i
  while (j < text.length) {
    const d = text.charCodeAt(j)
    if (d === 0x2c || d === 0x7d || d === 0x5d || WS.has(d)) break
    j++
  }
  return j > i ? j : -1
}

/**
 * The [start, end) span of the value at `path` (object keys only), or undefined if it is not there. A
 * key an object repeats is read as JSON.parse reads it, the last one winning: the member rewritten is
 * the one a client's parser sees.
 */
export function findMember(text: string, path: readonly string[]): [number, number] | undefined {
  let i = skipWs(text, 0)
  for (let level = 0; level < path.length; level++) {
    if (text.charCodeAt(i) !== 0x7b) return undefined
    i = skipWs(text, i + 1)
    let found: [number, number] | undefined
    while (i < text.length && text.charCodeAt(i) === 0x22) {
      const keyEnd = skipString(text, i)
      if (keyEnd < 0) return undefined
      const raw = text.slice(i + 1, keyEnd - 1)
      const key = raw.includes('\\') ? (JSON.parse(text.slice(i, keyEnd)) as string) : raw
      i = skipWs(text, keyEnd)
      if (text.charCodeAt(i) !== 0x3a) return undefined
      const valueStart = skipWs(text, i + 1)
      const valueEnd = skipValue(text, valueStart)
      if (valueEnd < 0) return undefined
      if (key === path[level]) found = [valueStart, valueEnd]
      i = skipWs(text, valueEnd)
      if (text.charCodeAt(i) === 0x2c) i = skipWs(text, i + 1)
    }
    if (!found) return undefined
    if (level === path.length - 1) return found
    i = found[0]
  }
  return undefined
}

/** `text` with the value at `path` replaced by `value` serialized, or undefined if the member is not there. */
export function spliceMember(text: string, path: readonly string[], value: unknown): string | undefined {
  const span = findMember(text, path)
  if (!span) return undefined
  return text.slice(0, span[0]) + JSON.stringify(value) + text.slice(span[1])
}

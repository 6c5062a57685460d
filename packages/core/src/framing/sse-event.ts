/**
 * One SSE event as a dialect reads it: its fields decoded from the raw bytes, and the event written
 * back with a new payload, valid in its own framing (docs/transport.md#sse-framing).
 */
import { LineEnds } from './line-ends.js'
import { NO_NAME, type DecodedEvent } from './types.js'
import { Buffer, indexOf } from '../buffer.js'

const LF = 0x0a
const CR = 0x0d
const COLON = 0x3a
const SPACE = 0x20

export const DATA_COLON = Buffer.from('data:')
export const EVENT_COLON = Buffer.from('event:')

/** The fields of one event that usagewire reads, with where its data lines sit in the buffer. */
export interface SseEvent extends DecodedEvent {
  /** The `event:` field, or undefined (empty or absent: the spec's default type, "message"). */
  name: string | undefined
  /** The values of the data lines joined with "\n", as the spec defines. */
  data: string
  /** How many `data` lines the event has. */
  dataLines: number
  /** Byte range of the first data line's value (after the optional space). */
  dataStart: number
  dataEnd: number
  /** The first data line has a colon, and a space after it (a value that starts with one needs it). */
  dataColon: boolean
  dataSpaced: boolean
  /** Where the first data line starts, and where its line terminator ends. */
  linesStart: number
  firstLineEnd: number
  /** Where the last data line's value ends (its terminator and every later byte are kept). */
  linesEnd: number
}

/**
 * Reads `event:` and `data:` of the complete event `buf[start, end)`; comments and other fields are
 * skipped. `lfOnly`: the caller knows the event has no CR in it, so the common shape is read directly.
 */
export function decodeEvent(
  buf: Buffer,
  start: number,
  end: number,
  ends: LineEnds,
  lfOnly = false,
): SseEvent | undefined {
  if (lfOnly) {
    const simple = decodeSimple(buf, start, end)
    if (simple !== undefined) return simple
  }
  // Only events a dialect reads get here. A view bounds each line-end search to the event: a search
  // for a CR that an LF stream never has would otherwise run to the end of a large chunk, per event.
  const v = buf.subarray(start, end)
  const n = v.length
  let name: string | undefined
  let data = ''
  let lines = 0
  let dataStart = 0
  let dataEnd = 0
  let dataColon = false
  let dataSpaced = false
  let linesStart = 0
  let firstLineEnd = 0
  let linesEnd = 0
  let pos = 0
  ends.on(-1)
  while (pos < n) {
    const eol = ends.next(v, pos)
    let next = eol + 1
    if (eol === ends.cr && v[next] === LF) next++
    const isData = isField(v, pos, eol, DATA_COLON)
    if (isData || isField(v, pos, eol, EVENT_COLON)) {
      const colon = pos + (isData ? 4 : 5)
      let valueStart = colon === eol ? eol : colon + 1
      const spaced = valueStart < eol && v[valueStart] === SPACE
      if (spaced) valueStart++
      const value = v.toString('utf8', valueStart, eol)
      if (!isData) name = value === '' ? undefined : value
      else {
        if (lines === 0) {
          data = value
          linesStart = pos
          dataStart = valueStart
          dataEnd = eol
          dataColon = colon !== eol
          dataSpaced = spaced
          firstLineEnd = next > n ? n : next
        } else data = `${data}\n${value}`
        linesEnd = eol
        lines++
      }
    }
    pos = next
  }
  if (lines === 0) return undefined
  return {
    name,
    data,
    dataLines: lines,
    dataStart: start + dataStart,
    dataEnd: start + dataEnd,
    dataColon,
    dataSpaced,
    linesStart: start + linesStart,
    firstLineEnd: start + firstLineEnd,
    linesEnd: start + linesEnd,
  }
}

/**
 * The event that nearly every stream sends, in a buffer with no CR in it: an optional `event:` line, one
 * `data:` line, the blank line. Read with one search, for its data line's end, where the general reader
 * searches every line for both line ends and makes a view of the event to bound those searches. Any
 * other event is undefined here and read by the general reader, which gives the same fields for this one.
 */
function decodeSimple(buf: Buffer, start: number, end: number): SseEvent | undefined {
  if (end - start < 7 || buf[end - 1] !== LF || buf[end - 2] !== LF) return undefined
  let p = start
  let name: string | undefined
  if (startsWith(buf, p, end, EVENT_COLON)) {
    let valueStart = p + EVENT_COLON.length
    if (buf[valueStart] === SPACE) valueStart++
    let eol = valueStart
    while (eol < end && buf[eol] !== LF) eol++
    if (eol >= end - 2) return undefined
    name = eol > valueStart ? nameAt(buf, valueStart, eol) : undefined
    p = eol + 1
  }
  if (!startsWith(buf, p, end, DATA_COLON)) return undefined
  let dataStart = p + DATA_COLON.length
  const dataSpaced = buf[dataStart] === SPACE
  if (dataSpaced) dataStart++
  // The blank line's first LF ends the data line only if no LF comes before it.
  const dataEnd = indexOf.call(buf, LF, dataStart)
  if (dataEnd !== end - 2) return undefined
  return {
    name,
    data: buf.toString('utf8', dataStart, dataEnd),
    dataLines: 1,
    dataStart,
    dataEnd,
    dataColon: true,
    dataSpaced,
    linesStart: p,
    firstLineEnd: dataEnd + 1,
    linesEnd: dataEnd,
  }
}

function startsWith(buf: Buffer, at: number, end: number, field: Buffer): boolean {
  if (end - at < field.length) return false
  for (let i = 0; i < field.length; i++) if (buf[at + i] !== field[i]) return false
  return true
}

/** Event names a stream uses are few: each is made a string once, and compared byte by byte after that. */
const NAMES: Array<{ bytes: Buffer; text: string }> = []
const MAX_NAMES = 32

function nameAt(buf: Buffer, start: number, end: number): string {
  const n = end - start
  for (let k = 0; k < NAMES.length; k++) {
    const { bytes, text } = NAMES[k]!
    if (bytes.length !== n) continue
    let i = 0
    while (i < n && buf[start + i] === bytes[i]) i++
    if (i === n) return text
  }
  const text = buf.toString('utf8', start, end)
  if (NAMES.length < MAX_NAMES) NAMES.push({ bytes: Buffer.from(buf.subarray(start, end)), text })
  return text
}

/** The event `buf[start, end)` with its payload replaced by `data`, every other byte kept. */
export function encodeEvent(buf: Buffer, start: number, end: number, event: SseEvent, data: string): Buffer {
  if (
    event.dataLines === 1 &&
    event.dataColon &&
    (event.dataSpaced || data.charCodeAt(0) !== SPACE) &&
    data.indexOf('\n') === -1 &&
    data.indexOf('\r') === -1
  ) {
    // One line stays one line: only its value changes, every other byte is kept.
    return Buffer.concat([
      buf.subarray(start, event.dataStart),
      Buffer.from(data, 'utf8'),
      buf.subarray(event.dataEnd, end),
    ])
  }
  // Every piece of the new data gets its own `data: ` line, ended as the event ends its lines. Other
  // lines found between the old data lines are kept, in their order, ahead of the new data lines.
  const eol = lineEndOf(buf, start, end, event)
  const kept: Buffer[] = []
  if (event.dataLines > 1) {
    const v = buf.subarray(event.firstLineEnd, event.linesEnd)
    let pos = 0
    while (pos < v.length) {
      const { eol: lineEnd, next } = nextLine(v, pos)
      if (!isField(v, pos, lineEnd, DATA_COLON)) kept.push(v.subarray(pos, next))
      pos = next
    }
  }
  const lines = data.split(/\r\n|\r|\n/)
  return Buffer.concat([
    buf.subarray(start, event.linesStart),
    ...kept,
    Buffer.from(`data: ${lines.join(`${eol}data: `)}`, 'utf8'),
    buf.subarray(event.linesEnd, end),
  ])
}

/**
 * The line `buf[pos, eol)` is the field whose name and colon are `field` (a bare name without colon is
 * the field too, with an empty value).
 */
function isField(buf: Buffer, pos: number, eol: number, field: Buffer): boolean {
  const n = field.length - 1
  if (eol - pos < n) return false
  for (let i = 0; i < n; i++) if (buf[pos + i] !== field[i]) return false
  return pos + n === eol || buf[pos + n] === COLON
}

/** The line at `pos` in `buf`: where it ends, and where the next one starts. */
function nextLine(buf: Buffer, pos: number): { eol: number; next: number } {
  let eol = pos
  while (eol < buf.length && buf[eol] !== LF && buf[eol] !== CR) eol++
  let next = eol + 1
  if (buf[eol] === CR && buf[next] === LF) next++
  return { eol, next: next > buf.length ? buf.length : next }
}

/** The line terminator the event uses: its first data line's, else the first it has, else LF. */
function lineEndOf(buf: Buffer, start: number, end: number, event: SseEvent): string {
  let at = event.dataEnd
  if (event.firstLineEnd === at) {
    at = start + nextLine(buf.subarray(start, end), 0).eol
    if (at >= end) return '\n'
  }
  return buf[at] === CR ? (buf[at + 1] === LF ? '\r\n' : '\r') : '\n'
}

/**
 * Which of `names` the event's first line `event: <name>` carries (its index), -1 for another name, or
 * NO_NAME when the first line is not an `event:` field with a name. Plain byte reads: events that cannot
 * carry usage are never decoded, and a call into Buffer's native methods per event would cost more than
 * the compare.
 */
export function matchEventName(
  buf: Buffer,
  start: number,
  end: number,
  names: readonly Buffer[],
  firsts?: Uint8Array,
): number {
  if (
    end - start < 7 ||
    buf[start] !== 0x65 /* e */ ||
    buf[start + 1] !== 0x76 /* v */ ||
    buf[start + 2] !== 0x65 /* e */ ||
    buf[start + 3] !== 0x6e /* n */ ||
    buf[start + 4] !== 0x74 /* t */ ||
    buf[start + 5] !== 0x3a /* : */
  ) {
    return NO_NAME
  }
  const at = buf[start + 6] === 0x20 ? start + 7 : start + 6
  // An empty name is the spec's default type, as if the event had no name at all.
  if (buf[at] === LF || buf[at] === CR) return NO_NAME
  // A name that starts with a byte none of them starts with (most events' names) is settled at once.
  if (firsts !== undefined && at < end && firsts[buf[at]!] === 0) return -1
  for (let n = 0; n < names.length; n++) {
    const name = names[n]!
    const stop = at + name.length
    if (stop >= end) continue
    let i = 0
    while (i < name.length && buf[at + i] === name[i]) i++
    if (i === name.length && (buf[stop] === LF || buf[stop] === CR)) return n
  }
  return -1
}

/**
 * Reads a few members of a JSON document that passes through in pieces and is never held whole.
 *
 * An event that carries usage can be many MiB (an OpenAI Responses `response.completed` holds the whole
 * output, images and audio included, with `response.usage` near its end; a non-streaming body likewise).
 * Its bytes leave as they come, so its usage is read on the way: the text is followed by a pushdown
 * automaton whose only state is a stack of container kinds, and the raw bytes of the values at the wanted
 * paths are copied aside (each up to a bound) and parsed once complete.
 *
 * Strings are the bulk of such documents, so their bodies are skipped with `Buffer#indexOf` (a memchr)
 * and a count of the backslashes before each quote found, not a JS loop per byte.
 */

import type { PayloadScanner } from './types.js'
import { Buffer } from '../buffer.js'

/** Nesting deeper than this stops the scan: the stack that follows it is bounded. */
export const JSON_SCAN_MAX_DEPTH = 1000

const DEFAULT_MAX_VALUE_BYTES = 64 * 1024

const QUOTE = 0x22
const BACKSLASH = 0x5c
const LBRACE = 0x7b
const RBRACE = 0x7d
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

// Where the automaton stands.
const S_BOM = 0 // the first bytes: a UTF-8 BOM may come
const S_VALUE = 1 // a value must come (document start, after ':' or after ',' in an array)
const S_ARR_FIRST = 2 // after '[': a value or ']'
const S_OBJ_FIRST = 3 // after '{': a key or '}'
const S_KEY = 4 // after ',' in an object: a key
const S_COLON = 5 // after a key
const S_AFTER = 6 // after a value inside a container: ',' or its close
const S_STRING = 7 // inside a string (see `kind`)
const S_NUMBER = 8 // inside a number (see `num`)
const S_LITERAL = 9 // inside true, false or null
const S_DONE = 10 // after the root value: whitespace only
const S_STOP = 11 // no more reading: invalid text, a hard limit, or end()

// What the string being read is.
const K_VALUE = 0
const K_KEY = 1 // a key of an object off every path: only its end matters
const K_PATH_KEY = 2 // a key of an object on a path: its text is compared

// Where a number stands (RFC 8259 grammar); the accepting ones may end at any other byte.
const N_MINUS = 0
const N_ZERO = 1 // accepting
const N_INT = 2 // accepting
const N_DOT = 3
const N_FRAC = 4 // accepting
const N_EXP = 5
const N_EXP_SIGN = 6
const N_EXP_DIGITS = 7 // accepting

const accepting = (num: number): boolean => num === N_ZERO || num === N_INT || num === N_FRAC || num === N_EXP_DIGITS

const OBJECT = 1
const ARRAY = 2

const TRUE = Buffer.from('true')
const FALSE = Buffer.from('false')
const NULL = Buffer.from('null')
const BOM = [0xef, 0xbb, 0xbf]

/**
 * A string opened in the piece is first looked at by a JS loop for up to this many bytes: most strings
 * (keys, ids, short values) end within them, and on documents made of such strings the loop scans twice
 * as fast as an `indexOf` call per string (a trip into C++). A string that goes on from an earlier piece
 * is a long one: it goes to `indexOf` at once.
 */
const SHORT_STRING = 64

/**
 * `indexOf` searches to the end of the Buffer, past `end`. When the Buffer runs on past `end` by more than
 * this and more than the bytes to scan, the search runs in a view cut at `end`, so writes of small ranges
 * of a large Buffer do not scan its rest again and again.
 */
const VIEW_SLACK = 4096

interface PathNode {
  readonly children: Map<string, PathNode>
  /** Index of the path ending here, or -1 for an inner node. */
  leaf: number
  /** The paths ending at or under this node: a repeated key clears them (the last occurrence wins). */
  readonly leaves: number[]
}

const newNode = (): PathNode => ({ children: new Map(), leaf: -1, leaves: [] })

/**
 * Captures the members at given object-key paths of a JSON document written to it in pieces of any size
 * and split, with memory bounded by the nesting depth and the captured values, in time linear in the bytes.
 *
 * Paths go through objects only: a member inside an array is never captured, and a path that meets a
 * non-object on the way is absent. Keys are compared unescaped, and a repeated key's last occurrence wins,
 * as with `JSON.parse`. When one path is a prefix of another (['response'] and ['response', 'usage']),
 * only the shorter is followed: its value holds the longer one anyway, but if it is over `maxValueBytes`
 * both are absent.
 *
 * The structure is checked as JSON (and so are keys on a path and the captured values), but inside other
 * strings only the closing quote is looked for: a raw control character or a bad escape in a string that
 * is skipped is not reported.
 */
export class JsonMemberScanner implements PayloadScanner {
  private readonly root = newNode()
  private readonly paths: string[][] = []
  private readonly found: boolean[] = []
  private readonly values: unknown[] = []
  private readonly maxValueBytes: number
  /** Bytes of the longest raw spelling of a key on a path (every character as `\uXXXX`). */
  private readonly keyCap: number

  private state = S_BOM
  private bomAt = 0
  private readonly stack = new Uint8Array(JSON_SCAN_MAX_DEPTH)
  private depth = 0
  /** The objects at depths 1..pathDepth are all on paths; `nodes[d]` is where the one at depth d stands. */
  private pathDepth = 0
  private readonly nodes: PathNode[] = []
  /** The path node of the value about to come, when it is on a path. */
  private pending: PathNode | undefined

  private kind = K_VALUE
  /** The byte before was a backslash that escapes the next one (kept across pieces). */
  private esc = false
  /** No piece has ended inside the string yet. */
  private fresh = false
  private readonly keyBuf: Buffer
  private keyLen = 0
  private keyOver = false

  private num = N_MINUS
  private lit: Buffer = NULL
  private litAt = 0

  /** The path being captured, or -1; its value began at stack depth `capDepth`. */
  private cap = -1
  private capDepth = 0
  /** Where the captured bytes start in the piece being written. */
  private capFrom = 0
  private capChunks: Buffer[] = []
  private capLen = 0
  private capDropped = false

  private _problem: string | undefined

  /**
   * @param paths object-key paths from the root to capture, e.g. [['type'], ['response','usage'], ['response','model'], ['usage'], ['error']]
   * @param maxValueBytes a captured value longer than this is dropped (bounded memory), default 64 KiB
   */
  constructor(paths: readonly (readonly string[])[], maxValueBytes: number = DEFAULT_MAX_VALUE_BYTES) {
    this.maxValueBytes = maxValueBytes
    let longestKey = 1
    for (const path of paths) {
      if (path.length === 0) throw new RangeError('JsonMemberScanner: an empty path')
      let node = this.root
      for (const key of path) {
        if (node.leaf >= 0) break // a shorter path already captures this one
        longestKey = Math.max(longestKey, Buffer.byteLength(key))
        let child = node.children.get(key)
        if (child === undefined) node.children.set(key, (child = newNode()))
        node = child
      }
      if (node.leaf >= 0) continue
      node.leaf = this.paths.length
      node.children.clear()
      this.paths.push([...path])
      this.found.push(false)
      this.values.push(undefined)
    }
    const collect = (node: PathNode): number[] => {
      if (node.leaf >= 0) node.leaves.push(node.leaf)
      for (const child of node.children.values()) node.leaves.push(...collect(child))
      return node.leaves
    }
    collect(this.root)
    this.keyCap = 6 * longestKey
    this.keyBuf = Buffer.allocUnsafe(this.keyCap)
    this.pending = this.root
  }

  /** Set when the text stopped being valid JSON (scanning stops there; what was captured before stays), or a limit was hit; a short reason. */
  get problem(): string | undefined {
    return this._problem
  }

  write(bytes: Buffer, start: number, end: number): void {
    if (this.state === S_STOP) return
    if (this.cap >= 0) this.capFrom = start
    let i = start
    while (i < end) {
      const state = this.state
      if (state === S_STRING) {
        const q =
          this.kind === K_PATH_KEY && !this.keyOver ? this.scanKey(bytes, i, end) : this.skipString(bytes, i, end)
        if (q < 0) break
        i = q + 1
        this.closeString(bytes, i)
        continue
      }
      const b = bytes[i]!
      switch (state) {
        case S_STOP: // a key or a captured value turned out invalid
          return
        case S_NUMBER:
          if (this.numberByte(b)) i++
          else if (accepting(this.num))
            this.valueDone(bytes, i) // the byte is read again after the number
          else return this.fail('invalid number')
          continue
        case S_LITERAL:
          if (b !== this.lit[this.litAt]) return this.fail('invalid literal')
          i++
          if (++this.litAt === this.lit.length) this.valueDone(bytes, i)
          continue
        case S_BOM:
          if (this.bomAt === 0 && b !== BOM[0]) {
            this.state = S_VALUE
            continue
          }
          if (b !== BOM[this.bomAt]) return this.fail('invalid byte at the start')
          if (++this.bomAt === BOM.length) this.state = S_VALUE
          i++
          continue
      }
      if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
        // Indentation comes in runs: one pass of the state dispatch for the whole run.
        for (i++; i < end; i++) {
          const c = bytes[i]
          if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
        }
        continue
      }
      switch (state) {
        case S_VALUE:
          if (!this.startValue(bytes, b, i)) return
          i++
          continue
        case S_ARR_FIRST:
          if (b === RBRACKET) this.close(bytes, i)
          else if (!this.startValue(bytes, b, i)) return
          i++
          continue
        case S_OBJ_FIRST:
          if (b === RBRACE) this.close(bytes, i)
          else if (b === QUOTE) this.startKey()
          else return this.fail('expected a key')
          i++
          continue
        case S_KEY:
          if (b !== QUOTE) return this.fail('expected a key')
          this.startKey()
          i++
          continue
        case S_COLON:
          if (b !== COLON) return this.fail("expected ':'")
          this.state = S_VALUE
          i++
          continue
        case S_AFTER: {
          const top = this.stack[this.depth - 1]
          if (b === COMMA) this.state = top === OBJECT ? S_KEY : S_VALUE
          else if (b === (top === OBJECT ? RBRACE : RBRACKET)) this.close(bytes, i)
          else return this.fail(top === OBJECT ? "expected ',' or '}'" : "expected ',' or ']'")
          i++
          continue
        }
        case S_DONE:
          return this.fail('data after the document')
      }
    }
    if (this.cap >= 0 && this.state !== S_STOP) this.keep(bytes, this.capFrom, end)
  }

  end(): void {
    if (this.state === S_STOP) return
    const rootNumber = this.state === S_NUMBER && this.depth === 0 && accepting(this.num)
    if (this.state !== S_DONE && !rootNumber) return this.fail('incomplete document')
    this.state = S_STOP
  }

  /** The captured members as one object shaped like the document: { type: 'x', response: { usage: {...}, model: '...' } }; paths not found (or dropped) are absent. */
  result(): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (let p = 0; p < this.paths.length; p++) {
      if (!this.found[p]) continue
      const path = this.paths[p]!
      let obj = out
      for (let k = 0; k < path.length - 1; k++) {
        const key = path[k]!
        let next = Object.hasOwn(obj, key) ? obj[key] : undefined
        if (next === undefined) define(obj, key, (next = {}))
        obj = next as Record<string, unknown>
      }
      define(obj, path[path.length - 1]!, this.values[p])
    }
    return out
  }

  /** A value starts with byte `b` at `i`. False when the scan stopped. */
  private startValue(bytes: Buffer, b: number, i: number): boolean {
    const node = this.pending
    this.pending = undefined
    if (node !== undefined && node.leaf >= 0) {
      this.cap = node.leaf
      this.capDepth = this.depth
      this.capFrom = i
      this.capLen = 0
      this.capDropped = false
    }
    if (b === LBRACE) {
      if (!this.push(OBJECT)) return false
      if (node !== undefined && node.leaf < 0) {
        this.nodes[this.depth] = node
        this.pathDepth = this.depth
      }
      this.state = S_OBJ_FIRST
    } else if (b === LBRACKET) {
      if (!this.push(ARRAY)) return false
      this.state = S_ARR_FIRST
    } else if (b === QUOTE) {
      this.kind = K_VALUE
      this.esc = false
      this.fresh = true
      this.state = S_STRING
    } else if ((b >= ZERO && b <= NINE) || b === MINUS) {
      this.num = b === MINUS ? N_MINUS : b === ZERO ? N_ZERO : N_INT
      this.state = S_NUMBER
    } else if (b === 0x74 /* t */ || b === 0x66 /* f */ || b === 0x6e /* n */) {
      this.lit = b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL
      this.litAt = 1
      this.state = S_LITERAL
    } else {
      this.fail('expected a value')
      return false
    }
    return true
  }

  private push(kind: number): boolean {
    if (this.depth === JSON_SCAN_MAX_DEPTH) {
      this.fail(`nesting deeper than ${JSON_SCAN_MAX_DEPTH}`)
      return false
    }
    this.stack[this.depth++] = kind
    return true
  }

  /** The container closes with the byte at `i`. */
  private close(bytes: Buffer, i: number): void {
    this.depth--
    if (this.pathDepth > this.depth) this.pathDepth = this.depth
    this.valueDone(bytes, i + 1)
  }

  private startKey(): void {
    this.esc = false
    this.fresh = true
    if (this.depth === this.pathDepth) {
      this.kind = K_PATH_KEY
      this.keyLen = 0
      this.keyOver = false
    } else this.kind = K_KEY
    this.state = S_STRING
  }

  /** The string closed; `after` is just past its quote. */
  private closeString(bytes: Buffer, after: number): void {
    if (this.kind === K_VALUE) return this.valueDone(bytes, after)
    this.state = S_COLON
    if (this.kind !== K_PATH_KEY || this.keyOver) return
    let key = this.keyBuf.toString('utf8', 0, this.keyLen)
    if (key.includes('\\')) {
      try {
        key = JSON.parse(`"${key}"`) as string
      } catch {
        return this.fail('invalid escape in a key')
      }
    }
    const child = this.nodes[this.depth]!.children.get(key)
    if (child === undefined) return
    // The key repeats what came before under it: JSON.parse keeps the last occurrence only.
    for (const leaf of child.leaves) {
      this.found[leaf] = false
      this.values[leaf] = undefined
    }
    this.pending = child
  }

  /** A value ended just before `end`. */
  private valueDone(bytes: Buffer, end: number): void {
    this.state = this.depth === 0 ? S_DONE : S_AFTER
    if (this.cap >= 0 && this.depth === this.capDepth) this.finishCapture(bytes, end)
  }

  private finishCapture(bytes: Buffer, end: number): void {
    const leaf = this.cap
    this.cap = -1
    if (this.capDropped) return
    let text: string
    if (this.capLen === 0) {
      // Begun and ended in this piece: decoded in place, never copied.
      if (end - this.capFrom > this.maxValueBytes) return this.drop(leaf)
      text = bytes.toString('utf8', this.capFrom, end)
    } else {
      this.keep(bytes, this.capFrom, end)
      if (this.capDropped) return
      text = Buffer.concat(this.capChunks, this.capLen).toString('utf8')
      this.capChunks = []
      this.capLen = 0
    }
    try {
      this.values[leaf] = JSON.parse(text)
      this.found[leaf] = true
    } catch {
      // Only escapes and control characters inside strings are left unchecked by the scan.
      this.fail(`invalid string in ${this.paths[leaf]!.join('.')}`)
    }
  }

  /** Copies `bytes[from, to)` of the value being captured, unless it grows over the bound. */
  private keep(bytes: Buffer, from: number, to: number): void {
    if (this.capDropped || to === from) return
    if (this.capLen + (to - from) > this.maxValueBytes) return this.drop(this.cap)
    const copy = Buffer.allocUnsafe(to - from)
    bytes.copy(copy, 0, from, to)
    this.capChunks.push(copy)
    this.capLen += to - from
  }

  private drop(leaf: number): void {
    this.capDropped = true
    this.capChunks = []
    this.capLen = 0
    this.note(`${this.paths[leaf]!.join('.')} over ${this.maxValueBytes} bytes, dropped`)
  }

  private numberByte(b: number): boolean {
    const digit = b >= ZERO && b <= NINE
    switch (this.num) {
      case N_MINUS:
        if (!digit) return false
        this.num = b === ZERO ? N_ZERO : N_INT
        return true
      case N_ZERO:
      case N_INT:
        if (digit && this.num === N_INT) return true
        if (b === DOT) this.num = N_DOT
        else if (b === 0x65 || b === 0x45) this.num = N_EXP
        else return false
        return true
      case N_DOT:
      case N_FRAC:
        if (digit) this.num = N_FRAC
        else if (this.num === N_FRAC && (b === 0x65 || b === 0x45)) this.num = N_EXP
        else return false
        return true
      case N_EXP:
        if (b === PLUS || b === MINUS) this.num = N_EXP_SIGN
        else if (digit) this.num = N_EXP_DIGITS
        else return false
        return true
      default: // N_EXP_SIGN, N_EXP_DIGITS
        if (!digit) return false
        this.num = N_EXP_DIGITS
        return true
    }
  }

  /**
   * Reads a key of an object on a path into `keyBuf`: keys are short, a byte loop is cheapest. Returns the
   * index of the closing quote, or -1 when the piece ends first (or the scan stopped).
   */
  private scanKey(bytes: Buffer, i: number, end: number): number {
    const buf = this.keyBuf
    const cap = this.keyCap
    let len = this.keyLen
    let esc = this.esc
    for (; i < end; i++) {
      const b = bytes[i]!
      if (esc) esc = false
      else if (b === QUOTE) break
      else if (b === BACKSLASH) esc = true
      else if (b < 0x20) {
        this.fail('control character in a key')
        return -1
      }
      if (len === cap) {
        // Longer than any key on a path, so it matches none: the rest is only skipped. `esc` already
        // tells whether the next byte is escaped.
        this.keyOver = true
        this.esc = esc
        return this.skipString(bytes, i + 1, end)
      }
      buf[len++] = b
    }
    this.keyLen = len
    this.esc = esc
    return i < end ? i : -1
  }

  /** Index of the quote closing the string that `bytes[i, end)` continues, or -1 when the piece ends first. */
  private skipString(bytes: Buffer, i: number, end: number): number {
    let j = i
    if (this.esc) {
      if (j >= end) return -1
      this.esc = false
      j++
    }
    // From here on, `j` is never inside an escape.
    const short = this.fresh ? Math.min(end, j + SHORT_STRING) : j
    this.fresh = false
    while (j < short) {
      const b = bytes[j]!
      if (b === QUOTE) return j
      j += b === BACKSLASH ? 2 : 1
    }
    if (j > end) {
      this.esc = true
      return -1
    }
    if (j === end) return -1
    let view = bytes
    if (bytes.length - end > VIEW_SLACK && bytes.length - end > end - j) view = bytes.subarray(0, end)
    let from = j
    for (;;) {
      const q = view.indexOf(QUOTE, j)
      if (q === -1 || q >= end) {
        let k = end
        while (k > from && bytes[k - 1] === BACKSLASH) k--
        this.esc = ((end - k) & 1) === 1
        return -1
      }
      let k = q
      while (k > from && bytes[k - 1] === BACKSLASH) k--
      if (((q - k) & 1) === 0) return q
      j = from = q + 1
    }
  }

  /** Stops the scan. */
  private fail(reason: string): void {
    this.note(reason)
    this.state = S_STOP
    this.cap = -1
    this.capChunks = []
    this.capLen = 0
  }

  private note(reason: string): void {
    this._problem ??= reason
  }
}

/** Sets an own property, even one named `__proto__`, as JSON.parse does. */
function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
}

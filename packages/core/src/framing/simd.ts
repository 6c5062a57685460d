import { SIMD_BASE64 } from './simd.bytes.js'

/**
 * The byte compares of large chunks in WebAssembly with 128-bit SIMD (simd.wat;
 * docs/architecture.md#the-simd-kernel): event templates (dialects/template.ts) and event stream frames
 * alike to the last one passed (eventstream.ts). In JavaScript a compare reads eight bytes per load,
 * about 20 instructions each; the kernel compares sixteen in three. It works on a copy: the template or
 * pattern and a window of the chunk are copied into its memory, and a window that ends inside an event is
 * followed by the next one from that event, twice as long, so every byte is copied about twice at most
 * whatever the framer asks. One instance for the process: JavaScript runs one call at a time.
 */
export class SimdKernel {
  /** The template or pattern whose bytes are at {@link TEMPLATE_AT} now. */
  placed: object | undefined = undefined
  /** How many events or frames the last run passed. */
  ran = 0
  /** The last run stopped at an event or frame longer than {@link MAX_WINDOW}, which only JavaScript reads. */
  long = false

  private readonly found: Int32Array
  // What the current run compares: the kernel's function and its arguments.
  private frameRun = false
  private a = 0
  private b = 0
  private c = 0
  private d = 0

  constructor(
    /** The module's memory, as bytes and as a view. */
    readonly memory: Uint8Array,
    readonly view: DataView,
    private readonly templateRun: TemplateRun,
    private readonly framesRun: FramesRun,
  ) {
    this.found = new Int32Array(memory.buffer, FOUND_AT, 2)
  }

  /**
   * Where the run of events from `at` that match the placed template of `parts` parts ends. `reach`: how
   * far the caller's last run reached, the first window's length (from {@link firstWindow} to
   * {@link MAX_WINDOW}), so that a stream of large chunks takes one window per chunk.
   */
  events(buf: Buffer, at: number, limit: number, reach: number, parts: number): number {
    this.frameRun = false
    this.a = parts
    return this.windows(buf, at, limit, reach)
  }

  /**
   * Where the run of frames from `at` ends that are `least` to `most` bytes long, have headers of
   * `headers` bytes that begin with the placed pattern of `length` bytes, and lie whole before `limit`;
   * `reach` as for {@link events}.
   */
  frames(
    buf: Buffer,
    at: number,
    limit: number,
    reach: number,
    least: number,
    most: number,
    headers: number,
    length: number,
  ): number {
    this.frameRun = true
    this.a = least
    this.b = most
    this.c = headers
    this.d = length
    return this.windows(buf, at, limit, reach)
  }

  private windows(buf: Buffer, at: number, limit: number, reach: number): number {
    const found = this.found
    let window = reach > firstWindow ? (reach < MAX_WINDOW ? reach : MAX_WINDOW) : firstWindow
    let ran = 0
    this.long = false
    for (;;) {
      const to = limit - at > window ? at + window : limit
      buf.copy(this.memory, WINDOW_AT, at, to)
      const end = WINDOW_AT + (to - at)
      const stop =
        (this.frameRun
          ? this.framesRun(WINDOW_AT, end, this.a, this.b, this.c, TEMPLATE_AT, this.d)
          : this.templateRun(WINDOW_AT, end, TEMPLATE_AT, this.a)) -
        WINDOW_AT +
        at
      ran += found[0]!
      if (found[1] === 0 || to === limit) {
        at = stop
        break
      }
      if (stop === at && window === MAX_WINDOW) {
        this.long = true
        break
      }
      at = stop
      window = window * 2 < MAX_WINDOW ? window * 2 : MAX_WINDOW
    }
    this.ran = ran
    return at
  }
}

type TemplateRun = (at: number, limit: number, template: number, parts: number) => number
type FramesRun = (
  at: number,
  limit: number,
  least: number,
  most: number,
  headers: number,
  head: number,
  length: number,
) => number

/** Where a template's part lengths and bytes, or a frame pattern's bytes, go. */
export const TEMPLATE_AT = 512
/** Where a window of the chunk goes. */
export const WINDOW_AT = 16384
/** The largest template or pattern the kernel takes, with the 16 bytes a compare may read past it. */
export const MAX_TEMPLATE = WINDOW_AT - TEMPLATE_AT - 16
/** The longest window: the memory's two pages hold it and the 16 bytes a compare may read past it. */
export const MAX_WINDOW = 65536

const FOUND_AT = 384

/**
 * From how many bytes on a run goes to the kernel, and its first window: below about four kilobytes,
 * copying the bytes and the call cost more than the kernel saves (bench/README.md, row 1e).
 */
export const SIMD_FROM_BYTES = 4096
/** The same, as the callers read it; tests lower them. */
export let simdFrom = SIMD_FROM_BYTES
export let firstWindow = SIMD_FROM_BYTES

let kernel: SimdKernel | null | undefined

/** The part of the WebAssembly API the kernel uses (Node's type declarations have none). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
}

/**
 * The kernel, made on first use; null where WebAssembly or its SIMD is not there or may not be compiled
 * (`--jitless`, an embedder that forbids compiling at run time): the compares in JavaScript do the same.
 */
export function simdKernel(): SimdKernel | null {
  if (kernel !== undefined) return kernel
  kernel = null
  try {
    const wasm = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly
    if (typeof wasm !== 'object') return null
    const bytes = base64Bytes(SIMD_BASE64)
    if (!wasm.validate(bytes)) return null
    const exports = new wasm.Instance(new wasm.Module(bytes), {}).exports
    const buffer = (exports.memory as { buffer: ArrayBuffer }).buffer
    const memory = new Uint8Array(buffer)
    for (const c of '"\\/bfnrt') memory[c.charCodeAt(0)] = 1
    for (const c of '0123456789abcdefABCDEF') memory[128 + c.charCodeAt(0)] = 1
    kernel = new SimdKernel(memory, new DataView(buffer), exports.run as TemplateRun, exports.frames as FramesRun)
  } catch {
    kernel = null
  }
  return kernel
}

/**
 * For tests: the compares in JavaScript only (`false`), or the kernel where it can be made (`true`),
 * from `from` bytes on and with a first window of `first` bytes.
 */
export function useSimdKernel(use: boolean, from = SIMD_FROM_BYTES, first = SIMD_FROM_BYTES): void {
  kernel = use ? undefined : null
  simdFrom = from
  firstWindow = first
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

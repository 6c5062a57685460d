import { KERNEL_BASE64 } from './template-kernel.bytes.js'

/**
 * The template compare in WebAssembly with 128-bit SIMD (template-kernel.wat;
 * docs/architecture.md#the-simd-kernel). In JavaScript the compare reads eight bytes per load, about 20
 * instructions each; the kernel compares sixteen bytes in three. It works on a copy: the template's
 * bytes and a window of the chunk are copied into its memory, and a window that ends inside an event is
 * followed by the next one from that event, twice as long, so every byte is copied about twice at most
 * whatever the framer asks. One instance for the process: JavaScript runs one call at a time.
 */
export interface Kernel {
  /** The module's memory, as bytes and as a view. */
  readonly memory: Uint8Array
  readonly view: DataView
  /** Where the run of events from `at` that match ends: offsets into `memory`. */
  readonly run: (at: number, limit: number, template: number, parts: number) => number
  /** What the last run found: `[events matched, 1 when it stopped at an event cut off by its limit]`. */
  readonly found: Int32Array
  /** The template whose bytes are at {@link TEMPLATE_AT} now. */
  template: object | undefined
}

/** Where a template's part lengths and bytes go. */
export const TEMPLATE_AT = 512
/** Where a window of the chunk goes. */
export const WINDOW_AT = 16384
/** The largest template the kernel takes: its lengths and bytes, and the 16 bytes a compare may read past them. */
export const MAX_TEMPLATE = WINDOW_AT - TEMPLATE_AT - 16
/** The longest window: the memory's two pages hold it and the 16 bytes a compare may read past it. */
export const MAX_WINDOW = 65536

const FOUND_AT = 384

/**
 * From how many bytes on a run goes to the kernel, and its first window: below about four kilobytes,
 * copying the bytes and the call cost more than the kernel saves (bench/README.md, row 1e).
 */
export const KERNEL_FROM_BYTES = 4096
/** The same, as the template reads it; tests lower them. */
export let kernelFrom = KERNEL_FROM_BYTES
export let firstWindow = KERNEL_FROM_BYTES

let kernel: Kernel | null | undefined

/** The part of the WebAssembly API the kernel uses (Node's type declarations have none). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
}

/**
 * The kernel, made on first use; null where WebAssembly or its SIMD is not there or may not be compiled
 * (`--jitless`, an embedder that forbids compiling at run time): the compare in JavaScript does the same.
 */
export function templateKernel(): Kernel | null {
  if (kernel !== undefined) return kernel
  kernel = null
  try {
    const wasm = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly
    if (typeof wasm !== 'object') return null
    const bytes = base64Bytes(KERNEL_BASE64)
    if (!wasm.validate(bytes)) return null
    const exports = new wasm.Instance(new wasm.Module(bytes), {}).exports
    const buffer = (exports.memory as { buffer: ArrayBuffer }).buffer
    const memory = new Uint8Array(buffer)
    for (const c of '"\\/bfnrt') memory[c.charCodeAt(0)] = 1
    for (const c of '0123456789abcdefABCDEF') memory[128 + c.charCodeAt(0)] = 1
    kernel = {
      memory,
      view: new DataView(buffer),
      run: exports.run as Kernel['run'],
      found: new Int32Array(buffer, FOUND_AT, 2),
      template: undefined,
    }
  } catch {
    kernel = null
  }
  return kernel
}

/**
 * For tests: the compare in JavaScript only (`false`), or the kernel where it can be made (`true`), from
 * `from` bytes on and with a first window of `first` bytes.
 */
export function useTemplateKernel(use: boolean, from = KERNEL_FROM_BYTES, first = KERNEL_FROM_BYTES): void {
  kernel = use ? undefined : null
  kernelFrom = from
  firstWindow = first
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

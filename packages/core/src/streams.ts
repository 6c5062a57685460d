import { Transform, type TransformCallback } from 'node:stream'
import { createProcessor, type Processor, type ProcessorOptions } from './processor.js'

/** A Node Transform around the push processor: `upstream.pipe(usageTransform(opts)).pipe(res)`. */
export class UsageTransform extends Transform {
  readonly processor: Processor

  constructor(options: ProcessorOptions | Processor = {}) {
    super()
    this.processor = 'push' in options ? options : createProcessor(options)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    for (const out of this.processor.push(chunk)) this.push(out)
    callback()
  }

  override _flush(callback: TransformCallback): void {
    for (const out of this.processor.end()) this.push(out)
    callback()
  }
}

/** A WHATWG TransformStream around the push processor, for fetch-style gateways (`response.body.pipeThrough`). */
export function usageTransformStream(
  options: ProcessorOptions | Processor = {},
): TransformStream<Uint8Array, Uint8Array> & { processor: Processor } {
  const processor = 'push' in options ? options : createProcessor(options)
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (const out of processor.push(chunk)) controller.enqueue(out)
    },
    flush(controller) {
      for (const out of processor.end()) controller.enqueue(out)
    },
  })
  return Object.assign(stream, { processor })
}

/**
 * What every framer does with the pieces of a chunk: hand back bytes as Buffers without copying, return
 * what is ready, and join the pieces of an event that spans chunks, copied once.
 */

/** The same memory as a Buffer: no copy. */
export const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** Where `push` returns: what `out` holds, then `chunk` from `from` (the chunk itself when nothing else). */
export function finish(out: Buffer[] | undefined, chunk: Buffer, from: number): Buffer[] {
  if (out === undefined) return from === 0 ? [chunk] : from < chunk.length ? [chunk.subarray(from)] : []
  if (from < chunk.length) out.push(from === 0 ? chunk : chunk.subarray(from))
  return out
}

/**
 * The `held` pieces (`heldBytes` long) and `chunk[from, to)` as one buffer, copied once. Empties `held`;
 * the caller resets its byte count.
 */
export function joinHeld(held: Buffer[], heldBytes: number, chunk: Buffer, from: number, to: number): Buffer {
  if (to > from) held.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to))
  const event = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes + to - from)
  held.length = 0
  return event
}

import { indexOf } from '../buffer.js'

const LF = 0x0a
const CR = 0x0d

/**
 * Finds line ends in one buffer: the next LF and the next CR are each searched again only once passed,
 * so every byte is searched once for each whatever the line ends, and a stream without CR costs one CR
 * search per chunk.
 */
export class LineEnds {
  // Positions only: the buffer is passed to each call, so an idle stream never keeps a chunk alive here.
  private lf = -1
  /** The CR found last (the buffer's length when there is none after the position asked). */
  cr = -1

  /** Starts on a new buffer; `cr`, when known, is its first CR at or after the first position asked, else -1. */
  on(cr: number): void {
    this.lf = -1
    this.cr = cr
  }

  /** The first line end (LF or CR) in `buf` at or after `pos`, or the buffer's length. */
  next(buf: Buffer, pos: number): number {
    if (this.lf < pos) {
      const i = indexOf.call(buf, LF, pos)
      this.lf = i === -1 ? buf.length : i
    }
    if (this.cr < pos) {
      const i = indexOf.call(buf, CR, pos)
      this.cr = i === -1 ? buf.length : i
    }
    return this.lf < this.cr ? this.lf : this.cr
  }
}

/**
 * The runtime's `Buffer`, read once. In Node, `globalThis.Buffer` is an accessor: every use of the global
 * calls it, which on the hot path (a few uses per chunk) cost about 300 instructions each
 * (bench/README.md, row 8). Modules of the hot path import this binding instead.
 */
export const Buffer: typeof globalThis.Buffer = globalThis.Buffer

/**
 * `Buffer#indexOf`, read once and called as `indexOf.call(buf, …)`: looked up on each buffer, the method
 * is a property load that V8 leaves to an inline cache it calls out to, which made a third of the cost of
 * a short search (measured on Node 20: 11 → 7 ns per call of a one-byte search in a 300-byte event).
 */
export const indexOf = Buffer.prototype.indexOf

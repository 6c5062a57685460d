/**
 * The runtime's `Buffer`, read once. In Node, `globalThis.Buffer` is an accessor: every use of the global
 * calls it, which on the hot path (a few uses per chunk) cost about 300 instructions each
 * (bench/README.md, row 8). Modules of the hot path import this binding instead.
 */
export const Buffer: typeof globalThis.Buffer = globalThis.Buffer

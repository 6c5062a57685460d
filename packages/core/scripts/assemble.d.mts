/** WebAssembly text to binary, with wabt's assembler. */
export function assemble(text: string): Promise<Uint8Array>

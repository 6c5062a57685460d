// WebAssembly text to binary, with wabt's assembler (the WebAssembly Binary Toolkit, built to JS).
import wabt from 'wabt'

/** @param {string} text @returns {Promise<Uint8Array>} */
export async function assemble(text) {
  const tools = await wabt()
  const parsed = tools.parseWat('simd.wat', text, { simd: true })
  try {
    parsed.validate()
    return parsed.toBinary({ log: false, write_debug_names: false }).buffer
  } finally {
    parsed.destroy()
  }
}

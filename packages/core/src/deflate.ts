/**
 * True when two bytes open a zlib stream (RFC 1950): compression method 8, a window of at most 32 KiB,
 * and the check bits. `Content-Encoding: deflate` means zlib-wrapped deflate (RFC 9110 §8.4.1.2), but
 * some servers (older IIS and Apache among them) send raw deflate, which browsers, curl and node-fetch
 * decode all the same; so does usagewire, telling the two apart by this header.
 */
export function opensZlib(first: number, second: number): boolean {
  return (first & 0x0f) === 8 && first >> 4 <= 7 && ((first << 8) | second) % 31 === 0
}

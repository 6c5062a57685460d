/**
 * The framer contract (docs/architecture.md, "Framers"). A framer cuts a response body into events,
 * keeping each event's raw bytes; decodes the payload of an event a dialect must read; and re-encodes an
 * event whose usage changed, valid in its own framing. It knows nothing of dialects: what an event means
 * is asked of an {@link EventSink} (the processor).
 *
 * Framing is linear in the bytes whatever the chunking and line ends: a held event is never rescanned
 * from its start.
 */

/**
 * How a body is framed: a stream of events (SSE, the elements of a JSON array sent over time, the lines of
 * newline-delimited JSON), or one whole JSON document.
 */
export type FramingKind = 'sse' | 'json' | 'json-array' | 'eventstream' | 'ndjson'

/** {@link Framer.matchName}: the event has no name in its head. */
export const NO_NAME = -2

const FIRST_BYTES = new WeakMap<readonly Uint8Array[], Uint8Array>()

/** For {@link Framer.matchName}: a 1 at each byte one of `names` starts with, made once per list. */
export function firstBytes(names: readonly Uint8Array[]): Uint8Array {
  let firsts = FIRST_BYTES.get(names)
  if (firsts === undefined) {
    firsts = new Uint8Array(256)
    for (const name of names) if (name.length > 0) firsts[name[0]!] = 1
    FIRST_BYTES.set(names, firsts)
  }
  return firsts
}

/** What a framer hands the processor about one event, and what the processor answers. */
export interface EventSink {
  /**
   * An event whose head (its `event:` line, for SSE) is complete but not its end, `buf[start, end)`: may
   * its bytes leave now, unread, because it cannot carry usage? Asked at most once per event.
   */
  passes(buf: Buffer, start: number, end: number): boolean
  /**
   * The rest of a chunk from `start`, where an event starts: the first byte of it that may belong to an
   * event the sink would read (a cheap byte search over `chunk[start..]`), `chunk.length` when there is
   * none, or -1 when the sink cannot tell. The whole events before the event that byte is in leave as
   * they came, unframed; the framer asks again after that event. The event the chunk ends in, if it ends
   * inside one, is framed as usual.
   *
   * With `exact`, the framer does not know the chunk's line ends: only an exact answer may be given (the
   * events before it matched byte for byte, each ending in LF LF with no CR in it, so that the answer is
   * where the next event starts), else -1.
   */
  readsFrom(chunk: Buffer, start: number, exact?: boolean): number
  /** Whether `readsFrom` answers exactly now (see there): the framer then asks before it searches. */
  exactSkips?(): boolean
  /**
   * The event in progress, held as `held` (`heldBytes` long), goes on in `chunk` from `from`: -1 when the
   * sink cannot tell at once, else how many bytes of the chunk complete it when it passes whole by the
   * same exact match as `readsFrom`'s. Asked only when `exactSkips()` says so.
   */
  completes?(held: readonly Buffer[], heldBytes: number, chunk: Buffer, from: number): number
  /** One complete event `buf[start, end)`, at stream offset `at`; returns its replacement bytes, if any. */
  event(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined
  /**
   * Set by `event` when it returned nothing: how many of the event's first bytes decided, by a byte test
   * alone, that it passes (0: its head, the name, decided alone); -1 when it was read, or when every
   * event must still come to `event`. A framer may let an event pass without asking when those bytes are
   * the same in it, apart from its framing's own length fields (the AWS event stream framer does,
   * docs/architecture.md#byte-tests).
   */
  readonly passedBy?: number
  /**
   * An event grew over the size bound before its end; `buf[start, end)` is its head. Its bytes now leave
   * as they come. Return a scanner to read its payload on the way (usage of an event of any size is read
   * with bounded memory), or undefined to let it pass unread.
   */
  oversized(buf: Buffer, start: number, end: number, at: number): PayloadScanner | undefined
  /** The framer stopped on its own (input it cannot follow); every byte from stream offset `at` passes. */
  stopped(reason: string, at: number): void
  /**
   * The upstream reported an error in a frame of its own (an AWS event stream `exception` or `error`
   * message), at stream offset `at`; the frame passes untouched.
   */
  upstreamError?(error: string, at: number): void
}

/**
 * Reads the payload of an event that is passing through in pieces. For SSE the payload is what the spec
 * builds as the event's data: the values of its `data:` lines joined with LF.
 */
export interface PayloadScanner {
  write(bytes: Buffer, start: number, end: number): void
  /** The event ended (its blank line, or the end of the stream). */
  end(): void
}

/** The parts of an event a dialect reads. */
export interface DecodedEvent {
  /** The event's name (SSE `event:`), or undefined. */
  name: string | undefined
  /** The payload as text (SSE: the data lines joined with LF). */
  data: string
}

export interface Framer<E extends DecodedEvent = DecodedEvent> {
  readonly kind: FramingKind
  /** Cuts `chunk` into events for `sink`; returns the bytes to send now (an untouched chunk as itself). */
  push(chunk: Buffer, sink: EventSink): Buffer[]
  /** The body ended: a last event without its terminator is still an event. Returns the last bytes. */
  end(sink: EventSink): Buffer[]
  /** From now on hand back every byte as it comes (fail open); returns the bytes it was holding. */
  stop(): Buffer[]
  readonly stopped: boolean
  /**
   * Which of `names` the event `buf[start, end)` is named (its index), -1 for another name, or
   * {@link NO_NAME} when the event carries no name in its head. Plain byte compares: events that cannot
   * carry usage are never decoded. `end` may be short of the event's end (a head). `firsts`, when given,
   * has a 1 at each byte one of `names` starts with ({@link firstBytes}): a framer may use it to answer -1
   * at once for a name that starts otherwise.
   */
  matchName(buf: Buffer, start: number, end: number, names: readonly Buffer[], firsts?: Uint8Array): number
  /** The payload of the complete event `buf[start, end)`, or undefined when it has none. */
  decode(buf: Buffer, start: number, end: number): E | undefined
  /** The event `buf[start, end)` with its payload replaced by `data`, every other byte kept. */
  encode(buf: Buffer, start: number, end: number, event: E, data: string): Buffer
}

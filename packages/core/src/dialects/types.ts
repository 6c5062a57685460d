import type { JsonObject, Usage, UsageSources } from '../usage.js'

export type { JsonObject }

/** One event of a streamed response, or a whole JSON body, as a dialect reads it. */
export interface WireEvent {
  /** The event's name (SSE `event:`), or undefined. */
  name: string | undefined
  /** The parsed payload. */
  json: JsonObject
  /** Where the event starts in the response body (its byte offset), for labels such as `chunk@4096`. */
  at: number
}

/** A usage block found in an event: where it sits, as the wire had it, and in canonical buckets. */
export interface UsageBlock {
  /**
   * Object keys from the event's root to the block, for splicing the rewritten block back. Empty when the
   * counts are members of the event itself (Ollama): `native` then holds just those members, and each one
   * that changes is spliced on its own.
   */
  path: readonly string[]
  /** The block as the wire carried it. */
  native: JsonObject
  usage: Usage
  /** The field path each value was read at, e.g. `message_delta.usage.input_tokens`. */
  sources: UsageSources
  /**
   * The block is a whole snapshot of the prompt: a prompt total it states without a cache breakdown
   * means "no cache" only when it disagrees with the total known (docs/usage-model.md#one-block-one-snapshot).
   */
  whole?: boolean
  /** The block's name in corrections (`usageMetadata.totalTokenCount`); default `usage`. */
  field?: string
}

/**
 * What a dialect read from one event. It does not know which source is speaking (the client-facing
 * stream, the provider's own response seen by the upstream tap): the processor tells the ledger.
 */
export interface EventReading {
  /** The event's label in corrections, e.g. `message_delta` or `chunk#12`. */
  where: string
  model?: string
  /** The upstream reported an error (its type or message). */
  error?: string
  /** This event carries the response's final usage. */
  final?: boolean
  /** This event marks the end of the response (a stop reason, a terminal event). */
  ended?: boolean
  usage?: UsageBlock
  /**
   * A later event of this response states the same usage more truly (Bedrock's invocation metrics, one
   * frame after the last `message_delta`): this event waits for it, or for the end, before it is
   * rewritten and leaves.
   */
  awaits?: boolean
  /**
   * The response's first usage block, which some clients read the prompt's counts from alone (Anthropic's
   * `message_start`): the `messageStart` policy applies to it (docs/truth-sources.md#message_start-policies).
   */
  start?: boolean
  /**
   * The event carries only usage, nothing of the answer (OpenAI Chat's `choices: []` chunk): it may be
   * left out for a client that did not ask for it (docs/truth-sources.md#ensurestreamusage).
   */
  usageOnly?: boolean
}

/** Where a dialect's `text` puts the generated text of an event. */
export interface TextSink {
  /** A piece of generated text; `reasoning` when it is the model's reasoning, not its answer. */
  add(text: string, reasoning?: boolean): void
}

/** The per-response reader of a dialect; it may keep state between events (a finish chunk seen, …). */
export interface DialectReader {
  /**
   * For an event without a name: may it carry usage or an error (or be a control message)? A cheap byte
   * test on `buf[start, end)`; only the events it accepts are decoded and parsed.
   */
  mayCarry(buf: Buffer, start: number, end: number): boolean
  /**
   * For an event named as a usage event whose name says too little (every Bedrock frame is a `chunk`):
   * -1 when this one may carry usage, else how many of its first bytes (from `start`) tell that it
   * cannot. A byte test like `mayCarry`, and a pure one: any event of the same name whose first bytes are
   * the same must get the same answer, for the framer may pass such events without asking again
   * (docs/architecture.md#byte-tests). Without it every such event is read.
   */
  namedPassing?(buf: Buffer, start: number, end: number): number
  /**
   * Quick needles this response's reader has learnt (`DialectSpec.quick`, read by the processor on every
   * chunk it searches): for a dialect whose needles depend on how the provider writes its JSON, known
   * once the reader has seen an event. Undefined: the spec's, or none.
   */
  readonly quick?: readonly Buffer[] | undefined
  /** Reads one event the byte tests let through. */
  read(event: WireEvent): EventReading | undefined
  /** Reads a whole (non-streaming) JSON body. */
  readBody(json: JsonObject): EventReading | undefined
  /**
   * A payload that is not JSON: true when the dialect knows it as a control message (OpenAI Chat's
   * `[DONE]`), false when it is malformed.
   */
  control?(data: string): boolean
  /**
   * For a payload too large to hold: which members to capture from it while it passes
   * (docs/architecture.md#oversized-events); the object built from them is read like the whole event.
   */
  readonly largePaths?: readonly (readonly string[])[]
  /**
   * For a payload that wraps the dialect's own event (a Bedrock `chunk`'s base64 `bytes`): the event's
   * JSON text, or undefined when the event cannot carry usage or an error (a byte test, nothing parsed).
   */
  unwrap?(payload: string): string | undefined
  /** The payload `payload` with the event it wraps replaced by `inner`. */
  wrap?(payload: string, inner: string): string
  /** The stream ended whole (not cut by an abort): a last chance to say it was final or ended. */
  end?(): { final?: boolean; ended?: boolean } | undefined
  /**
   * Where the block at `path` should carry `usage`: the native block with the best values written in, a
   * new object (never `native` changed), or `native` itself when nothing in it would change.
   */
  write(native: JsonObject, usage: Usage, path: readonly string[]): JsonObject
}

/**
 * A wire dialect describes itself; the processor and the Exchange hold no dialect's details
 * (docs/adding-a-dialect.md).
 */
export interface DialectSpec {
  /** A stable name, used in routes, records and metrics: `anthropic-messages`. */
  readonly id: string
  /** Path suffixes this dialect answers by default (matched case-insensitively). */
  readonly routes: readonly string[]
  /** Names of events (SSE `event:`) that may carry usage or an error; any other named event is never read. */
  readonly usageEvents: readonly Buffer[]
  /**
   * Path suffixes (matched case-insensitively) on which an `application/json` body is a stream of JSON
   * array elements sent over time, not one whole body (Gemini's `:streamGenerateContent` without `alt=sse`).
   */
  readonly jsonArrayRoutes?: readonly string[]
  /**
   * Byte strings one of which every event the reader would read contains (its usage events' names, the
   * members its `mayCarry` looks for): a chunk of whole events with none of them leaves unframed. Chosen
   * to start with rare bytes, at most 7 bytes long (a longer one is searched by a slower algorithm).
   * Omitted when no such short list exists; a reader may then learn one (`DialectReader.quick`).
   */
  readonly quick?: readonly Buffer[]
  /**
   * For a data-only stream: members whose string values never change what `mayCarry` decides or what
   * state it keeps (any state it sets is set again alike by an event of the same shape). The processor
   * learns a template from an event that passed, with these values free, and passes the events that
   * match it without asking `mayCarry` (docs/architecture.md#event-templates).
   */
  readonly freeStrings?: ReadonlySet<string>
  /**
   * Counts the response head carries (Bedrock's `x-amzn-bedrock-*-token-count`): the Exchange enters them
   * in the ledger when the head arrives, so a body that reports none, or 0, still has them, and one that
   * reports counts replaces them.
   */
  headUsage?(header: (name: string) => string | undefined): { usage: Usage; sources: UsageSources } | undefined
  /**
   * The generated text an event carries (text, tool-call arguments, reasoning), given to `into` piece by
   * piece in the order the event has it, each reasoning piece (thinking, a reasoning summary) said to be
   * one: for an estimate of the output of a response the client left before its usage came
   * (docs/truth-sources.md#aborts), and for a sidecar to join a client's answer to the provider's, also
   * when a gateway dropped the reasoning on the way (docs/sidecar.md#correlation).
   */
  text?(json: JsonObject, into: TextSink): void
  /**
   * The members whose string values `text` gives, each as it is or (when empty) not at all, and which it
   * reads for nothing else: with them, events of one shape give their text by a template instead of being
   * parsed (docs/architecture.md#text-templates). A dialect whose `text` reads a string other than to give
   * it leaves this out.
   */
  readonly textKeys?: ReadonlySet<string>
  /**
   * Members holding a count that `text` never reads (an event's sequence number): free in a text template
   * too, so events that differ only in it and their text share one.
   */
  readonly textCounts?: ReadonlySet<string>
  /** Is this the first event of a stream in this dialect? */
  recognizeEvent(name: string | undefined, json: unknown): boolean
  /** Is this a whole JSON body in this dialect? */
  recognizeBody(json: JsonObject): boolean
  /**
   * A fresh reader for one response. `route` is the request path without its query string, for a dialect
   * whose path says what its body does not (Bedrock Converse names the model only in the path).
   */
  reader(route?: string): DialectReader
}

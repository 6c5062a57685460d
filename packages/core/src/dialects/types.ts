import type { Ledger } from '../ledger.js'
import type { Dialect } from '../record.js'
import type { JsonObject } from '../usage.js'

/** What a dialect learns about the response besides usage. */
export interface ResponseState {
  model: string | null
  /** The response carried its final usage block. */
  final: boolean
  /** The upstream reported an error in the body or stream. */
  error: string | undefined
  /** The stream's `data: [DONE]` sentinel arrived (OpenAI Chat ends a whole stream with it). */
  done: boolean
  /** Number of events seen so far (for labels such as `chunk#12`). */
  events: number
}

/** A usage block to write back: where it sits in the event's JSON and its new value. */
export interface UsageRewrite {
  path: readonly string[]
  before: JsonObject
  after: JsonObject
}

export interface DialectContext {
  ledger: Ledger
  state: ResponseState
}

/**
 * A wire dialect: which events may carry usage (decided from bytes, before any decoding), how to read
 * them into the ledger, and how to write the best usage known back into them.
 */
export interface DialectHandler {
  readonly name: Dialect
  /** `event:` names whose events may carry usage or an error; matched on bytes. */
  readonly eventNames: readonly Buffer[]
  /**
   * For an event without an `event:` line: may it carry usage or an error? A cheap byte test; only the
   * events it accepts are decoded and parsed.
   */
  mayCarry(buf: Buffer, start: number, end: number): boolean
  /** Reads one parsed event; returns the rewrite to apply, if any. */
  onEvent(name: string | undefined, json: JsonObject, ctx: DialectContext): UsageRewrite | undefined
  /** The stream ended normally (not cut by a client abort). */
  onEnd?(ctx: DialectContext): void
  /** Reads a whole (non-streaming) JSON body; returns the rewrite to apply, if any. */
  onBody(json: JsonObject, ctx: DialectContext): UsageRewrite | undefined
}

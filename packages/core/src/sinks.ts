import { describeError, warn, type Logger } from './log.js'
import type { UsageRecord } from './record.js'

/** Where records go: a function, or an object with `write` (a metrics exporter, a durable ledger). */
export type Sink = (record: UsageRecord) => unknown
export type SinkLike = Sink | { write(record: UsageRecord): unknown; readonly name?: string }

/** What the sinks of one middleware have done; a failing sink shows here and in the log, never elsewhere. */
export interface SinkStats {
  records: number
  failures: number
}

/**
 * Hands each record to every sink. A sink that throws, or returns a promise that rejects, is logged and
 * counted, never raised: a sink's failure must not take the gateway down. Nothing waits for an async
 * sink, so a slow one never delays a response.
 */
export class Sinks {
  readonly stats: SinkStats = { records: 0, failures: 0 }
  private readonly sinks: Array<{ name: string; write: Sink }>

  constructor(
    sinks: readonly SinkLike[],
    private readonly logger: Logger | undefined,
  ) {
    this.sinks = sinks.map((sink, i) =>
      typeof sink === 'function'
        ? { name: sink.name || `sink#${i}`, write: sink }
        : { name: sink.name ?? `sink#${i}`, write: (record: UsageRecord) => sink.write(record) },
    )
  }

  get size(): number {
    return this.sinks.length
  }

  deliver(record: UsageRecord): void {
    this.stats.records++
    for (const sink of this.sinks) {
      try {
        const result = sink.write(record)
        if (result !== undefined && result !== null && typeof (result as PromiseLike<unknown>).then === 'function') {
          ;(result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.failed(sink.name, error))
        }
      } catch (error) {
        this.failed(sink.name, error)
      }
    }
  }

  private failed(name: string, error: unknown): void {
    this.stats.failures++
    warn(this.logger, `sink ${name} failed: ${describeError(error)}`)
  }
}

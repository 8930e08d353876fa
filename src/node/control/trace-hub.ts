/**
 * Fans TRACE events out to the clients streaming GET /trace/stream. The filter calls trace() only
 * for packets matching the selector, so an idle hub costs nothing on the packet path.
 */
import type { TraceEvent, TraceSink } from '../filter/index.js';

export type TraceListener = (event: TraceEvent) => void;

export class TraceHub implements TraceSink {
  readonly #listeners = new Set<TraceListener>();

  trace(event: TraceEvent): void {
    for (const l of this.#listeners) l(event);
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: TraceListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }
}

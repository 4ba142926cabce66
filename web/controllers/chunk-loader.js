/**
 * The chunk loader: the server `get` the stream controller waits for, one at a time (Puffer).
 * An answer counts only when it is the chunk and level asked for, with the switch prefix when one
 * was asked for (answers from before a seek or resync are stale; a closed chunk has no prefix
 * and needs none). A refusal of it drops it; the error controller sets a time before which no
 * `get` goes (retryAfter). A closed connection to the server (the answer is lost with it) or to
 * the daemon (the pipeline is fetched again after its next init) forgets it.
 */
import { Events } from '../events.js';

/** Whether a CHUNK_LOADED payload answers `expected` ({chunk, level, prefix}, null: nothing asked). Pure. */
export function answers(expected, { chunk, level, prefixBytes, closed = false }) {
  if (expected === null || expected.chunk !== chunk || expected.level !== level) return false;
  return !expected.prefix || prefixBytes !== 0 || closed; // an older answer without the prefix we need
}

export class ChunkLoader {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{server: import('./server-link.js').ServerLink, clock: () => number}} deps
   */
  constructor(bus, { server, clock }) {
    Object.assign(this, { bus, server, clock });
    this.handlers = {
      [Events.SERVER_CLOSED]: () => this.forget(),
      [Events.DAEMON_CLOSED]: () => this.forget(),
    };
    this.reset();
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** A new channel: nothing asked for, no retry time. */
  reset() {
    this.inflight = null; // {virtual, chunk, level, prefix} of the `get` we wait for
    this.retryAtS = 0;
  }

  /** No longer waits for the `get` in flight (a seek, a resync, a closed link: its answer is stale or lost). */
  forget() {
    this.inflight = null;
  }

  /** Whether a `get` is in flight. */
  get waiting() {
    return this.inflight !== null;
  }

  /** Whether a `get` may go at `nowS` (no retry time ahead). */
  mayRequest(nowS) {
    return nowS >= this.retryAtS;
  }

  /** Asks the server for `request` ({virtual, chunk, level, prefix}); false when it could not be sent. */
  request(request) {
    if (!this.server.requestChunk(request.chunk, request.level, request.prefix)) return false;
    this.inflight = request;
    return true;
  }

  /** The `get` a CHUNK_LOADED payload answers (no longer waited for), null for a stale answer. */
  take(payload) {
    const expected = this.inflight;
    if (!answers(expected, payload)) return null;
    this.inflight = null;
    return expected;
  }

  /** A refusal of chunk `chunk` of `level`: whether it answers the `get` in flight (then no longer waited for). */
  dropRequest(chunk, level) {
    const answersInflight = this.inflight !== null && chunk === this.inflight.chunk && level === this.inflight.level;
    if (answersInflight) this.inflight = null;
    return answersInflight;
  }

  /** No `get` before `seconds` from now. */
  retryAfter(seconds) {
    this.retryAtS = this.clock() + seconds;
  }

  destroy() {
    this.unregisterListeners();
  }
}

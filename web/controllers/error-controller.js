/**
 * The error controller: what each refusal or failure does to the stream. The stream controller
 * plays the normal flow; this one decides the recovery and asks the stream for it (block,
 * resync, restart from the playhead) or the chunk loader (a refused `get`, retry later).
 *
 * - Daemon `error`: a refusal of the stream (generator_mismatch, forbidden_origin,
 *   open_required) blocks it until retry() or a channel switch; anything else (bad_chunk,
 *   generation_failed, busy, internal) is a non-fatal ERROR and a resync from the first chunk
 *   the buffer lacks (busy: after RETRY_BUSY_S).
 * - A daemon that closes takes its own refusals (generator_mismatch, open_required) with it:
 *   the next daemon that connects is asked afresh.
 * - Server `error`: not_available, rate_limited, gap: ask again after RETRY_NOT_AVAILABLE_S (the
 *   manifest that says so came first, so the retry picks another level or skips the gap);
 *   outside_window: back to the live start; unknown_channel: blocked; anything else: a
 *   non-fatal ERROR, and the refused request is not repeated for RETRY_ERROR_S.
 * - Video element `error`: a non-fatal ERROR, then a fresh MediaSource and daemon session from
 *   where the playhead is.
 * - A daemon init segment the SourceBuffer refuses (DAEMON_INIT_FAILED): blocked, a fatal ERROR.
 */
import { Events } from '../events.js';
import { ErrorCode } from '../protocol.js';

export const RETRY_NOT_AVAILABLE_S = 0.5; // live chunk not published yet: ask again after
export const RETRY_BUSY_S = 1; // daemon busy: resync after
export const RETRY_ERROR_S = 2; // a `get` refused for another reason: ask again after
const DAEMON_BLOCKS = Object.freeze([ErrorCode.GENERATOR_MISMATCH, ErrorCode.FORBIDDEN_ORIGIN, ErrorCode.OPEN_REQUIRED]);
// Refusals of the daemon itself: they go with it (the next daemon that connects is asked afresh)
const DAEMON_REFUSALS = Object.freeze([ErrorCode.GENERATOR_MISMATCH, ErrorCode.OPEN_REQUIRED]);
const SERVER_RETRIES = Object.freeze([ErrorCode.NOT_AVAILABLE, ErrorCode.RATE_LIMITED, ErrorCode.GAP]);

export class ErrorController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{stream: import('./stream-controller.js').StreamController, loader: import('./chunk-loader.js').ChunkLoader,
   *          manifests: import('./manifest-controller.js').ManifestController, live: import('./live-controller.js').LiveController,
   *          video: HTMLVideoElement}} deps
   */
  constructor(bus, { stream, loader, manifests, live, video }) {
    Object.assign(this, { bus, stream, loader, manifests, live, video });
    this.handlers = {
      [Events.DAEMON_ERROR]: (p) => this.onDaemonError(p),
      [Events.DAEMON_CLOSED]: () => this.stream.unblock(DAEMON_REFUSALS),
      [Events.SERVER_ERROR]: (p) => this.onServerError(p),
      [Events.DAEMON_INIT_FAILED]: ({ message }) => this.stream.block('format', message),
    };
    this.onVideoError = this.onVideoError.bind(this);
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
    this.video.addEventListener('error', this.onVideoError);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
    this.video.removeEventListener('error', this.onVideoError);
  }

  onDaemonError({ code, message }) {
    if (DAEMON_BLOCKS.includes(code)) {
      this.stream.block(code, message);
      return;
    }
    this.bus.trigger(Events.ERROR, { source: 'daemon', message: `${code}: ${message}`, fatal: false });
    this.stream.resync(null);
    if (code === ErrorCode.BUSY) this.loader.retryAfter(RETRY_BUSY_S);
    this.stream.tick();
  }

  onServerError({ code, message, chunk, level }) {
    const answersInflight = this.loader.dropRequest(chunk, level);
    if (SERVER_RETRIES.includes(code)) {
      this.loader.retryAfter(RETRY_NOT_AVAILABLE_S);
    } else if (code === ErrorCode.OUTSIDE_WINDOW) {
      this.live.jumpToEdge();
    } else if (code === ErrorCode.UNKNOWN_CHANNEL) {
      this.stream.block(code, message);
    } else {
      // Anything else refused: say so, and do not hammer the server with the same request.
      this.bus.trigger(Events.ERROR, { source: 'server', message: `${code}: ${message}`, fatal: false });
      if (answersInflight) this.loader.retryAfter(RETRY_ERROR_S);
    }
    this.stream.tick();
  }

  onVideoError() {
    const error = this.video.error;
    if (error === null || this.manifests.status().manifest === null) return;
    this.bus.trigger(Events.ERROR, { source: 'video', message: `video element error ${error.code}: ${error.message}`, fatal: false });
    this.stream.restartFromPlayhead();
  }

  destroy() {
    this.unregisterListeners();
  }
}

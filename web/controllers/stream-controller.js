/**
 * The stream controller: a tick loop (every 100 ms and after each event) that decides what
 * to fetch next and keeps the pipeline moving:
 *
 *   server `get` -> CHUNK_LOADED -> forwarded to the daemon (after a `seek` when it is not
 *   the chunk the daemon expects) -> SEGMENT_GENERATED (one per GOP of the chunk, in order)
 *   -> SourceBuffer -> BUFFER_APPENDED (`complete` with the chunk's last GOP)
 *
 * One `get` in flight at a time (Puffer), at most MAX_CHUNKS_AT_DAEMON chunks generating,
 * and the buffer filled up to maxBufferS (15 s) counting chunks still in the pipeline. It
 * asks for the switch prefix after a level switch, a seek or a resync, and resyncs from the
 * first chunk not yet in the buffer when the daemon session starts over. The tick polls the
 * live controller and the playback monitor, then decides; the rest is beside it, each with its
 * own job, and talks to it through events:
 *
 *   manifest-controller.js        the channel's manifest and Timeline  -> MANIFEST_PARSED
 *   daemon-session-controller.js  `open`, init segment, segments into the SourceBuffer, the
 *                                 chunks at the daemon (daemon-queue.js)  -> DAEMON_READY
 *   seek-controller.js            the video element's seeks  -> SEEK_OUTSIDE_BUFFER
 *   chunk-loader.js               the `get` in flight, stale answers, the retry time
 *   level-controller.js           each chunk's level (manual or ABR)
 *   playback-monitor.js           startup, stalls, playback held until data is in
 *   error-controller.js           recovery from refusals and failures: calls block, unblock,
 *                                 resync, restartFromPlayhead and tick
 *
 * Chunk positions are *virtual* chunks of the Timeline (a looped ladder goes on endlessly);
 * the server and the daemon only ever see ladder chunk indices. A live channel is played
 * inside its window (live-controller.js: where to join, seeks clamped, a viewer that fell out
 * jumps back to the edge, chunks no level has are skipped); a chunk of the chosen level that
 * is a gap is fetched at another level.
 */
import { Events } from '../events.js';
import { chunkSeconds } from './live-window.js';

export const State = Object.freeze({
  WAITING_MANIFEST: 'waiting for the server',
  WAITING_DAEMON: 'waiting for the daemon',
  FETCHING: 'fetching',
  GENERATING: 'generating',
  BUFFER_FULL: 'buffer full',
  WAITING_LIVE_EDGE: 'waiting for the live edge',
  ENDED: 'ended',
  BLOCKED: 'blocked',
});

export const TICK_MS = 100; // tick period
export const MAX_BUFFER_S = 15; // Puffer's buffer cap
export const MAX_CHUNKS_AT_DAEMON = 2; // chunks forwarded and not yet wholly back as segments
// the emulator (emulation/sim/run.mjs) imports the pipeline constants from here
export { ABR_HORIZON, DOWNLOAD_HISTORY } from './level-controller.js';
export { DAEMON_FPS_HALF_LIFE_S } from './daemon-pace.js';

export class StreamController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, server: import('./server-link.js').ServerLink,
   *          daemon: import('./daemon-link.js').DaemonLink, buffer: import('./buffer-controller.js').BufferController,
   *          levels: import('./level-controller.js').LevelController, monitor: import('./playback-monitor.js').PlaybackMonitor,
   *          live: import('./live-controller.js').LiveController, manifests: import('./manifest-controller.js').ManifestController,
   *          session: import('./daemon-session-controller.js').DaemonSessionController, loader: import('./chunk-loader.js').ChunkLoader,
   *          clock: () => number, maxBufferS?: number}} deps
   */
  constructor(bus, { video, server, daemon, buffer, levels, monitor, live, manifests, session, loader, clock, maxBufferS = MAX_BUFFER_S }) {
    Object.assign(this, { bus, video, server, daemon, buffer, levels, monitor, live, manifests, session, loader, clock });
    this.configuredMaxBufferS = maxBufferS;
    this.handlers = {
      [Events.MANIFEST_PARSED]: (p) => this.onManifestParsed(p),
      [Events.CHUNK_LOADED]: (p) => this.onChunkLoaded(p),
      [Events.DAEMON_READY]: () => this.onDaemonReady(),
      [Events.BUFFER_APPENDED]: (p) => this.onBufferAppended(p),
      [Events.BUFFER_FULL]: (p) => this.onBufferFull(p),
      [Events.SEEK_OUTSIDE_BUFFER]: (p) => this.onSeekOutsideBuffer(p),
    };
    this.timer = null;
    this.resetChannel(null);
  }

  registerListeners() {
    this.bus.onEach(this.handlers);
  }

  unregisterListeners() {
    this.bus.offEach(this.handlers);
  }

  /** Starts playing `channel` (the server link says hello; the rest follows from events). */
  start(channel) {
    this.registerListeners();
    this.resetChannel(channel);
    this.buffer.attach();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Everything per channel back to its initial state. */
  resetChannel(channel) {
    this.manifests.reset(channel);
    this.session.reset();
    this.loader.reset();
    this.fetchChunk = 0; // next virtual chunk to ask the server for
    this.appendedThrough = -1; // last virtual chunk of the current run that is in the buffer
    this.discontinuity = true; // the next chunk needs its switch prefix
    this.blockedReason = null;
    this.ended = false;
    this.monitor.reset();
    this.live.reset();
    this.levels.reset();
    this.maxBufferS = this.configuredMaxBufferS;
    this.state = State.WAITING_MANIFEST;
  }

  /** Plays another channel on the same connections. */
  switchChannel(channel) {
    this.resetChannel(channel);
    this.buffer.attach();
    this.server.switchChannel(channel);
    this.tick();
  }

  /** Unblocks after the user fixed the cause (restarted the daemon, ...). */
  retry() {
    this.blockedReason = null;
    this.monitor.restartClockUnlessStarted();
    this.daemon.retryNow();
  }

  // --- events -------------------------------------------------------------------------

  /** An update of the manifest (manifest-controller.js): a first one says where the stream starts. */
  onManifestParsed({ first }) {
    if (first) this.#restartRunAt(this.live.startChunk());
    this.live.updateSeekable(this.appendedThrough);
    this.tick();
  }

  /** A fresh daemon session (daemon-session-controller.js): it expects chunk 0 or a seek. */
  onDaemonReady() {
    this.live.updateSeekable(this.appendedThrough);
    this.resync(0);
    this.tick();
  }

  onChunkLoaded(payload) {
    const expected = this.loader.take(payload);
    if (expected === null) return; // stale (seek, resync)
    const { chunk, level, bytes, seconds, endS, frame } = payload;
    this.levels.downloaded({ bytes, seconds, endS });
    if (!this.session.forward(expected, frame)) return; // the daemon went away meanwhile; refetched after resync
    this.monitor.mark('chunk');
    this.server.ack(chunk, level);
    this.fetchChunk = expected.virtual + 1;
    this.discontinuity = false;
    this.levels.forwarded(chunk, level);
    this.tick();
  }

  onBufferAppended({ chunk, level, complete }) {
    this.monitor.mark('append');
    this.levels.appended(chunk, level);
    this.live.updateSeekable(this.appendedThrough);
    if (complete && chunk === this.appendedThrough + 1) this.appendedThrough = chunk;
    this.appendedThrough = this.live.doneThrough(this.appendedThrough);
    this.monitor.startPlayback(this.manifests.timeline.startS(chunk));
    this.tick();
  }

  onBufferFull({ maxBufferS }) {
    this.maxBufferS = Math.min(this.maxBufferS, maxBufferS);
  }

  /** A seek outside the buffer (seek-controller.js flushed it): the run starts over at `virtual`. */
  onSeekOutsideBuffer({ virtual }) {
    this.ended = false;
    this.#restartRunAt(virtual);
    this.tick();
  }

  // --- the loop -----------------------------------------------------------------------

  tick() {
    this.session.holdWhileNothingComes(this.blockedReason !== null);
    const { manifest, timeline } = this.manifests;
    if (manifest === null) return this.#wait(State.WAITING_MANIFEST);
    const now = this.clock();
    this.live.poll();
    this.monitor.poll(now, { ended: this.ended, fps: manifest.fps, blocked: this.blockedReason !== null });
    if (this.blockedReason !== null) return this.#wait(State.BLOCKED);
    if (!this.session.ready) return this.#wait(State.WAITING_DAEMON);
    const { fetchChunk } = this;
    if (!timeline.endless && !manifest.live && this.appendedThrough >= manifest.chunk_count - 1 && this.session.queue.length === 0) {
      if (!this.ended) {
        this.ended = true;
        this.buffer.endOfStream();
      }
      return this.#wait(State.ENDED);
    }
    if (this.loader.waiting) return this.#wait(State.FETCHING);
    if (this.live.leftWindow(fetchChunk)) return this.live.jumpToEdge(); // paused or slow for longer than the window lasts
    if (!timeline.has(fetchChunk) || this.live.pastEdge(fetchChunk)) return this.#wait(manifest.live ? State.WAITING_LIVE_EDGE : State.GENERATING);
    if (this.session.queue.length >= MAX_CHUNKS_AT_DAEMON) return this.#wait(State.GENERATING);
    if (this.monitor.started && this.#aheadS() + chunkSeconds(manifest) > this.maxBufferS) return this.#wait(State.BUFFER_FULL);
    if (this.loader.mayRequest(now)) this.#fetchNext(now);
  }

  /** Where the loop stops this tick (the early returns of tick()). */
  #wait(state) {
    this.state = state;
  }

  #fetchNext(now) {
    const virtual = this.fetchChunk;
    const { chunk } = this.manifests.timeline.split(virtual);
    if (this.live.isHole(chunk)) {
      this.#skipGap(virtual);
      return;
    }
    const level = this.levels.choose(chunk, () => this.abrContext(now));
    if (level === null) return; // the manifest does not describe the chunks ahead yet
    const prefix = chunk > 0 && (this.discontinuity || this.levels.switchesTo(level));
    if (!this.loader.request({ virtual, chunk, level, prefix })) return;
    this.state = State.FETCHING;
  }

  /** The ABR context for the next chunk (web/abr/context.js). */
  abrContext(nowS = this.clock()) {
    return this.levels.abrContext({
      nowS,
      fetchChunk: this.fetchChunk,
      bufferS: this.#aheadS(),
      maxBufferS: this.maxBufferS,
      rebuffering: this.monitor.rebuffering,
    });
  }

  /** Seconds of video buffered or at the daemon not yet back as segments. */
  #aheadS() {
    const { manifest } = this.manifests;
    return this.buffer.bufferAheadS() + this.session.queue.pendingS(chunkSeconds(manifest), manifest.fps);
  }

  /** No level has this chunk: go on with the next one (it needs its prefix, the daemon a seek). */
  #skipGap(virtual) {
    this.live.skip(virtual);
    if (this.appendedThrough === virtual - 1) this.appendedThrough = virtual;
    this.fetchChunk = virtual + 1;
    this.discontinuity = true;
    this.tick();
  }

  #restartRunAt(virtual) {
    this.appendedThrough = virtual - 1;
    this.fetchChunk = virtual;
    this.loader.forget();
    this.session.queue.clear(null);
    this.discontinuity = true;
  }

  /** Forget the pipeline; fetch again from the first chunk the buffer lacks (`daemonNext`: what the daemon expects, null: unknown). */
  resync(daemonNext) {
    this.loader.forget();
    this.session.queue.clear(daemonNext);
    this.fetchChunk = this.appendedThrough + 1;
    this.discontinuity = true;
    const { manifest, timeline } = this.manifests;
    const resumeAt = timeline === null ? 0 : timeline.split(this.fetchChunk).chunk;
    if (manifest?.prev_latent_rule === 'chained' && resumeAt !== 0 && resumeAt !== daemonNext) {
      // The legacy rule chains every frame to the one before: no way back in mid-stream.
      this.block('chained', 'this legacy (chained) stream lost its generation sequence; reload the page to play it from the start');
    }
  }

  /** Stops fetching until retry() or a channel switch; causes without a link notice become a fatal ERROR. */
  block(kind, message) {
    this.blockedReason = { kind, message };
    this.state = State.BLOCKED;
    if (kind === 'format' || kind === 'chained') this.bus.trigger(Events.ERROR, { source: 'stream', message, fatal: true });
  }

  /** Lifts a block whose kind is one of `kinds`. */
  unblock(kinds) {
    if (this.blockedReason !== null && kinds.includes(this.blockedReason.kind)) this.blockedReason = null;
  }

  /** A fresh MediaSource and a fresh daemon session from where the playhead is (the video element failed). */
  restartFromPlayhead() {
    const resumeAt = this.video.currentTime;
    this.buffer.attach();
    this.#restartRunAt(this.manifests.timeline.atTime(resumeAt));
    this.session.reopen();
  }

  /** Read-only: the stream's state (Player.snapshot; the channel and its manifest: manifests.status()). */
  status() {
    return {
      state: this.state,
      maxBufferS: this.maxBufferS,
      blocked: this.blockedReason,
    };
  }

  destroy() {
    clearInterval(this.timer);
    this.timer = null;
    this.unregisterListeners();
  }
}

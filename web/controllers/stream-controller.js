/**
 * The stream controller: a tick loop (every 100 ms and after each event) that decides what
 * to fetch next and keeps the pipeline moving:
 *
 *   server `get` -> CHUNK_LOADED -> forwarded to the daemon (after a `seek` when it is not
 *   the chunk the daemon expects) -> SEGMENT_GENERATED -> SourceBuffer -> BUFFER_APPENDED
 *
 * One `get` in flight at a time (Puffer), at most MAX_CHUNKS_AT_DAEMON chunks generating,
 * and the buffer filled up to maxBufferS (15 s) counting chunks still in the pipeline. It
 * picks each chunk's level (manual override, else the ABR rule), asks for the switch prefix
 * after a level switch, a seek or a resync, measures startup time and stalls (buffer under
 * 0.1 s while playing), and recovers from daemon or server loss by resyncing from the first
 * chunk not yet in the buffer.
 */
import { Events } from '../events.js';
import { Ewma } from '../abr/ewma.js';
import { chunkQualityDb, levelsFromManifest, upcomingFromManifest } from '../abr/context.js';

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
export const STALL_BUFFER_S = 0.1; // below this while playing = stalled
export const MAX_CHUNKS_AT_DAEMON = 2; // chunks forwarded and not yet back as segments
export const ABR_HORIZON = 5; // upcoming chunks described to the ABR
export const DOWNLOAD_HISTORY = 8; // transfers kept for the ABR
export const DAEMON_FPS_HALF_LIFE_S = 4; // seconds of generation
export const RETRY_NOT_AVAILABLE_S = 0.5; // live chunk not published yet: ask again after
export const RETRY_BUSY_S = 1; // daemon busy: resync after
export const LIVE_START_BEHIND = 2; // chunks behind a live ladder's edge to start at

export class StreamController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, server: import('./server-link.js').ServerLink,
   *          daemon: import('./daemon-link.js').DaemonLink, buffer: import('./buffer-controller.js').BufferController,
   *          estimator: import('../abr/throughput-estimator.js').ThroughputEstimator, abr: object,
   *          clock: () => number, maxBufferS?: number, loop?: boolean, manualLevel?: number|null}} deps
   */
  constructor(bus, { video, server, daemon, buffer, estimator, abr, clock, maxBufferS = MAX_BUFFER_S, loop = false, manualLevel = null }) {
    Object.assign(this, { bus, video, server, daemon, buffer, estimator, abr, clock, loop, manualLevel });
    this.configuredMaxBufferS = maxBufferS;
    this.handlers = {
      [Events.MANIFEST_LOADED]: (p) => this.onManifestLoaded(p),
      [Events.INIT_STATE_LOADED]: (p) => this.onInitStateLoaded(p),
      [Events.CHUNK_LOADED]: (p) => this.onChunkLoaded(p),
      [Events.SERVER_ERROR]: (p) => this.onServerError(p),
      [Events.SERVER_CLOSED]: () => this.onServerClosed(),
      [Events.DAEMON_INIT]: (p) => this.onDaemonInit(p),
      [Events.DAEMON_CLOSED]: () => this.onDaemonClosed(),
      [Events.DAEMON_ERROR]: (p) => this.onDaemonError(p),
      [Events.DAEMON_STATUS]: (p) => this.onDaemonStatus(p),
      [Events.SEGMENT_GENERATED]: (p) => this.onSegment(p),
      [Events.BUFFER_APPENDED]: (p) => this.onBufferAppended(p),
      [Events.BUFFER_FULL]: (p) => this.onBufferFull(p),
    };
    this.videoHandlers = {
      seeking: () => this.onVideoSeeking(),
      ended: () => this.onVideoEnded(),
      error: () => this.onVideoError(),
    };
    this.timer = null;
    this.resetChannel(null);
  }

  registerListeners() {
    for (const [event, handler] of Object.entries(this.handlers)) this.bus.on(event, handler);
    for (const [event, handler] of Object.entries(this.videoHandlers)) this.video.addEventListener(event, handler);
  }

  unregisterListeners() {
    for (const [event, handler] of Object.entries(this.handlers)) this.bus.off(event, handler);
    for (const [event, handler] of Object.entries(this.videoHandlers)) this.video.removeEventListener(event, handler);
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
    this.channel = channel;
    this.manifest = null;
    this.initState = null;
    this.daemonReady = false; // the daemon sent `init` for the open stream and it is in the SourceBuffer
    this.fetchChunk = 0; // next chunk to ask the server for
    this.runStart = 0; // first chunk of the current contiguous run (0, or where we sought)
    this.appendedThrough = -1; // last chunk of the run that is in the buffer
    this.inflight = null; // {chunk, level, prefix} of the `get` we wait for
    this.atDaemon = new Map(); // chunk -> level: forwarded, segment not back yet
    this.daemonNext = null; // chunk the daemon expects next (null: unknown, send a seek)
    this.discontinuity = true; // the next chunk needs its switch prefix
    this.lastFetchedLevel = null;
    this.lastQuality = null;
    this.chunkLevels = new Map(); // chunk -> level, of what went into the buffer
    this.downloads = [];
    this.daemonFps = new Ewma(DAEMON_FPS_HALF_LIFE_S);
    this.daemonStatus = null;
    this.retryAtS = 0;
    this.blockedReason = null;
    this.ended = false;
    this.startS = this.clock();
    this.startupS = null;
    this.playRequested = false;
    this.stalls = 0;
    this.stallS = 0;
    this.stallStartS = null;
    this.maxBufferS = this.configuredMaxBufferS;
    this.state = State.WAITING_MANIFEST;
    this.abr?.reset();
  }

  /** Plays another channel on the same connections. */
  switchChannel(channel) {
    this.resetChannel(channel);
    this.buffer.attach();
    this.server.switchChannel(channel);
    this.tick();
  }

  setAbr(abr) {
    this.abr?.destroy();
    this.abr = abr;
    this.tick();
  }

  /** null = automatic (ABR); a level id = always that level. */
  setManualLevel(level) {
    this.manualLevel = level;
    this.tick();
  }

  /** Unblocks after the user fixed the cause (restarted the daemon, ...). */
  retry() {
    this.blockedReason = null;
    this.daemon.retryNow();
  }

  get chunkDurationS() {
    return this.manifest.chunk_frames / this.manifest.fps;
  }

  /** Level of the chunk being shown now (null before the first one). */
  get playingLevel() {
    if (this.manifest === null) return null;
    const chunk = Math.floor((this.video.currentTime * this.manifest.fps) / this.manifest.chunk_frames);
    return this.chunkLevels.get(chunk) ?? this.lastFetchedLevel;
  }

  /** The daemon's generation speed: measured from segments, else what it reports. */
  get daemonFpsEstimate() {
    if (this.daemonFps.totalWeight > 0) return this.daemonFps.getEstimate();
    if (this.daemonStatus !== null && this.daemonStatus.fps > 0) return this.daemonStatus.fps;
    return null;
  }

  // --- events -------------------------------------------------------------------------

  onManifestLoaded({ channel, manifest }) {
    if (channel !== this.channel) return;
    const first = this.manifest === null;
    this.manifest = manifest;
    if (first) {
      const start = manifest.live ? Math.max(0, manifest.chunk_count - LIVE_START_BEHIND) : 0;
      this.#restartRunAt(start);
      this.buffer.setDuration(manifest.live ? Infinity : manifest.frames / manifest.fps);
    }
    this.tick();
  }

  onInitStateLoaded({ channel, data }) {
    if (channel !== this.channel || this.manifest === null) return;
    if (this.initState !== null) return; // a reconnect to the server: the daemon's stream is unchanged
    this.initState = data;
    this.daemon.openStream(this.manifest, data);
  }

  onDaemonInit({ mime, data }) {
    // A fresh generation session (open or re-open after a reconnect): it expects chunk 0 or a seek.
    this.buffer
      .appendInit(mime, data)
      .then(() => {
        this.daemonReady = this.buffer.ready;
        this.#resync(0);
        this.tick();
      })
      .catch((error) => this.#block('format', error.message));
  }

  onDaemonClosed() {
    this.daemonReady = false;
    this.atDaemon.clear();
    this.inflight = null;
  }

  onDaemonStatus(status) {
    this.daemonStatus = status;
  }

  onDaemonError({ code, message }) {
    if (code === 'generator_mismatch' || code === 'forbidden_origin' || code === 'open_required') {
      this.#block(code, message);
      return;
    }
    // bad_chunk, generation_failed, busy, internal: start over from the first chunk the buffer lacks.
    this.bus.trigger(Events.ERROR, { source: 'daemon', message: `${code}: ${message}`, fatal: false });
    this.#resync(null);
    if (code === 'busy') this.retryAtS = this.clock() + RETRY_BUSY_S;
    this.tick();
  }

  onServerClosed() {
    this.inflight = null; // its answer is lost with the connection
  }

  onServerError({ code, message, chunk, level }) {
    const answersInflight = this.inflight !== null && chunk === this.inflight.chunk && level === this.inflight.level;
    if (answersInflight) this.inflight = null;
    if (code === 'not_available' || code === 'rate_limited') {
      this.retryAtS = this.clock() + RETRY_NOT_AVAILABLE_S;
    } else if (code === 'unknown_channel') {
      this.#block(code, message);
    } else if (!answersInflight && code !== 'unknown_chunk' && code !== 'beyond_live_edge') {
      this.bus.trigger(Events.ERROR, { source: 'server', message: `${code}: ${message}`, fatal: false });
    }
    this.tick();
  }

  onChunkLoaded({ chunk, level, bytes, seconds, endS, frame, prefixBytes }) {
    const expected = this.inflight;
    if (expected === null || expected.chunk !== chunk || expected.level !== level) return; // stale (seek, resync)
    if (expected.prefix && chunk > 0 && prefixBytes === 0) return; // an older answer without the prefix we need
    this.inflight = null;
    this.downloads.push({ bytes, seconds, endS });
    if (this.downloads.length > DOWNLOAD_HISTORY) this.downloads.shift();
    this.estimator.addSample(seconds, bytes);
    if (!this.daemonReady) return; // the daemon went away meanwhile; refetched after resync
    if (this.daemonNext !== chunk && !this.daemon.seek(chunk)) return;
    if (!this.daemon.forwardChunk(frame)) return;
    this.daemonNext = chunk + 1;
    this.atDaemon.set(chunk, level);
    this.server.ack(chunk, level);
    this.fetchChunk = chunk + 1;
    this.discontinuity = false;
    if (level !== this.lastFetchedLevel) this.bus.trigger(Events.LEVEL_SWITCHING, { level, auto: this.manualLevel === null });
    this.lastFetchedLevel = level;
    this.lastQuality = chunkQualityDb(this.manifest.levels[level].chunks[chunk] ?? {});
    this.tick();
  }

  onSegment({ chunk, level, frames, generationMs, data }) {
    if (this.atDaemon.get(chunk) !== level) return; // from before a seek or resync
    this.atDaemon.delete(chunk);
    if (generationMs > 0 && frames > 0) this.daemonFps.sample(generationMs / 1000, frames / (generationMs / 1000));
    this.buffer.appendSegment({ chunk, level, data });
  }

  onBufferAppended({ chunk, level }) {
    this.chunkLevels.set(chunk, level);
    if (chunk === this.appendedThrough + 1) this.appendedThrough = chunk;
    if (!this.playRequested) {
      this.playRequested = true;
      this.#watchFirstFrame();
      this.video.play().catch((error) => this.bus.trigger(Events.NOTICE, {
        kind: 'autoplay', level: 'warn', text: `Press play to start (${error.message})`,
      }));
    }
    this.tick();
  }

  onBufferFull({ maxBufferS }) {
    this.maxBufferS = Math.min(this.maxBufferS, maxBufferS);
  }

  onVideoSeeking() {
    if (this.manifest === null) return;
    const target = this.video.currentTime;
    if (this.buffer.isBuffered(target)) return;
    if (this.manifest.prev_latent_rule === 'chained' && target >= this.chunkDurationS) {
      this.bus.trigger(Events.NOTICE, {
        kind: 'seek', level: 'warn',
        text: 'This stream uses the legacy chained rule: it can only be played from the start.',
      });
      return;
    }
    const chunk = Math.min(
      Math.floor((target * this.manifest.fps) / this.manifest.chunk_frames),
      Math.max(0, this.manifest.chunk_count - 1),
    );
    this.buffer.flush();
    this.chunkLevels.clear();
    this.abr.reset();
    this.ended = false;
    this.#restartRunAt(chunk);
    this.tick();
  }

  onVideoEnded() {
    if (!this.loop || this.manifest === null || this.manifest.live) return;
    this.video.currentTime = 0;
    this.video.play().catch(() => {});
  }

  onVideoError() {
    const error = this.video.error;
    if (error === null || this.manifest === null) return;
    this.bus.trigger(Events.ERROR, { source: 'video', message: `video element error ${error.code}: ${error.message}`, fatal: false });
    // A fresh MediaSource and a fresh daemon session from where we were.
    const resumeAt = this.video.currentTime;
    this.buffer.attach();
    this.daemonReady = false;
    this.#restartRunAt(Math.floor((resumeAt * this.manifest.fps) / this.manifest.chunk_frames));
    if (this.initState !== null) this.daemon.openStream(this.manifest, this.initState);
  }

  // --- the loop -----------------------------------------------------------------------

  tick() {
    if (this.manifest === null) {
      this.state = State.WAITING_MANIFEST;
      return;
    }
    const now = this.clock();
    this.#trackStalls(now);
    if (this.blockedReason !== null) {
      this.state = State.BLOCKED;
      return;
    }
    if (!this.daemonReady) {
      this.state = State.WAITING_DAEMON;
      return;
    }
    const chunkCount = this.manifest.chunk_count;
    if (!this.manifest.live && this.appendedThrough >= chunkCount - 1 && this.atDaemon.size === 0) {
      if (!this.ended) {
        this.ended = true;
        this.buffer.endOfStream();
      }
      this.state = State.ENDED;
      return;
    }
    if (this.inflight !== null) {
      this.state = State.FETCHING;
      return;
    }
    if (this.fetchChunk >= chunkCount) {
      this.state = this.manifest.live ? State.WAITING_LIVE_EDGE : State.GENERATING;
      return;
    }
    if (this.atDaemon.size >= MAX_CHUNKS_AT_DAEMON) {
      this.state = State.GENERATING;
      return;
    }
    const pipelineS = this.atDaemon.size * this.chunkDurationS;
    if (this.startupS !== null && this.buffer.bufferAheadS() + pipelineS + this.chunkDurationS > this.maxBufferS) {
      this.state = State.BUFFER_FULL;
      return;
    }
    if (now < this.retryAtS) return;
    this.#fetchNext(now);
  }

  #fetchNext(now) {
    const chunk = this.fetchChunk;
    const level = this.manualLevel !== null
      ? Math.min(this.manualLevel, this.manifest.levels.length - 1)
      : this.abr.chooseLevel(this.abrContext(now));
    const prefix = chunk > 0 && (this.discontinuity || level !== this.lastFetchedLevel);
    if (!this.server.requestChunk(chunk, level, prefix)) return;
    this.inflight = { chunk, level, prefix };
    this.state = State.FETCHING;
  }

  /** The ABR context for the next chunk (web/abr/context.js). */
  abrContext(nowS = this.clock()) {
    const manifest = this.manifest;
    return {
      nowS,
      bufferS: this.buffer.bufferAheadS() + this.atDaemon.size * this.chunkDurationS,
      maxBufferS: this.maxBufferS,
      chunkDurationS: this.chunkDurationS,
      chunkFrames: manifest.chunk_frames,
      fps: manifest.fps,
      levels: levelsFromManifest(manifest),
      upcoming: upcomingFromManifest(manifest, this.fetchChunk, ABR_HORIZON),
      lastLevel: this.lastFetchedLevel,
      lastQuality: this.lastQuality,
      throughputKbps: this.estimator.estimateKbps(),
      downloads: this.downloads.slice(),
      daemonFps: this.daemonFpsEstimate,
      rebuffering: this.stallStartS !== null,
    };
  }

  #trackStalls(now) {
    if (this.startupS === null) return;
    const video = this.video;
    const atEnd = this.ended && video.currentTime >= video.duration - STALL_BUFFER_S;
    const starving = !video.paused && !video.seeking && !atEnd && this.buffer.bufferAheadS() < STALL_BUFFER_S;
    if (starving && this.stallStartS === null) {
      this.stallStartS = now;
      this.stalls += 1;
      this.bus.trigger(Events.STALL_STARTED, { atS: now });
    } else if (!starving && this.stallStartS !== null) {
      this.stallS += now - this.stallStartS;
      this.stallStartS = null;
      this.bus.trigger(Events.STALL_ENDED, { atS: now });
    }
  }

  /** Total stall seconds including a stall still going on. */
  stallSecondsAt(now = this.clock()) {
    return this.stallS + (this.stallStartS === null ? 0 : now - this.stallStartS);
  }

  #watchFirstFrame() {
    const video = this.video;
    const startS = this.startS;
    const done = () => {
      if (this.startupS !== null || startS !== this.startS) return;
      this.startupS = this.clock() - startS;
      this.bus.trigger(Events.PLAYBACK_STARTED, { startupS: this.startupS });
    };
    if (typeof video.requestVideoFrameCallback === 'function') video.requestVideoFrameCallback(() => done());
    else video.addEventListener('playing', done, { once: true });
  }

  #restartRunAt(chunk) {
    this.runStart = chunk;
    this.appendedThrough = chunk - 1;
    this.fetchChunk = chunk;
    this.inflight = null;
    this.atDaemon.clear();
    this.daemonNext = null;
    this.discontinuity = true;
  }

  /** Forget the pipeline; fetch again from the first chunk the buffer lacks. */
  #resync(daemonNext) {
    this.inflight = null;
    this.atDaemon.clear();
    this.fetchChunk = this.appendedThrough + 1;
    this.daemonNext = daemonNext;
    this.discontinuity = true;
  }

  #block(kind, message) {
    this.blockedReason = { kind, message };
    this.state = State.BLOCKED;
  }

  destroy() {
    clearInterval(this.timer);
    this.timer = null;
    this.unregisterListeners();
    this.abr?.destroy();
  }
}

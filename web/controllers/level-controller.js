/**
 * The level controller: the level of each chunk the stream controller fetches. The manual
 * override when one is set, else the ABR rule (web/abr/) on the context of web/abr/context.js
 * (the next ABR_HORIZON chunks, the last DOWNLOAD_HISTORY transfers, the throughput estimate,
 * the daemon's pace, the last level and quality); a level that has a gap at that chunk gives
 * way to the nearest lower level that has it (live-window.js `availableLevel`). It also keeps
 * the level of every chunk that went into the buffer: the level playing, and when the chosen
 * one reaches the screen.
 */
import { Events } from '../events.js';
import { DEFAULT_QUALITY, chunkInfo, chunkQuality, levelsFromManifest } from '../abr/context.js';
import { availableLevel, chunkSeconds } from './live-window.js';

export const ABR_HORIZON = 5; // upcoming chunks described to the ABR
export const DOWNLOAD_HISTORY = 8; // transfers kept for the ABR

export class LevelController {
  /**
   * @param {import('../events.js').EventBus} bus
   * @param {{video: HTMLVideoElement, estimator: import('../abr/throughput-estimator.js').ThroughputEstimator,
   *          abr: object, pace: import('./daemon-pace.js').DaemonPace, manualLevel?: number|null, quality?: string}} deps
   *   quality: the measure the ABR ranks chunks by (abr/context.js QUALITY_MEASURES)
   */
  constructor(bus, { video, estimator, abr, pace, manualLevel = null, quality = DEFAULT_QUALITY }) {
    Object.assign(this, { bus, video, estimator, abr, pace, manualLevel, quality });
    this.reset();
  }

  /** A new channel: nothing fetched or buffered, the ABR starts over. */
  reset() {
    this.manifest = null;
    this.timeline = null;
    this.lastFetchedLevel = null;
    this.lastQuality = null;
    this.chunkLevels = new Map(); // virtual chunk -> level, of what went into the buffer
    this.downloads = [];
    this.abr?.reset();
  }

  /** The stream's manifest (each update) and its Timeline. */
  setManifest(manifest, timeline) {
    this.manifest = manifest;
    this.timeline = timeline;
  }

  setAbr(abr) {
    this.abr?.destroy();
    this.abr = abr;
  }

  /** null = automatic (ABR); a level id = always that level. */
  setManualLevel(level) {
    this.manualLevel = level;
  }

  /**
   * The level to fetch ladder chunk `chunk` at, null while the manifest does not describe the
   * chunks ahead yet. `context()` gives the ABR context (only asked for when the ABR chooses).
   */
  choose(chunk, context) {
    let level;
    if (this.manualLevel !== null) {
      level = Math.min(this.manualLevel, this.manifest.levels.length - 1);
    } else {
      const ctx = context();
      if (ctx.upcoming.length === 0) return null;
      level = this.abr.chooseLevel(ctx);
    }
    return availableLevel(this.manifest, chunk, level);
  }

  /** The ABR context (web/abr/context.js) for virtual chunk `fetchChunk`, given the stream's buffer and clock. */
  abrContext({ nowS, fetchChunk, bufferS, maxBufferS, rebuffering }) {
    const manifest = this.manifest;
    return {
      nowS,
      bufferS,
      maxBufferS,
      chunkDurationS: chunkSeconds(manifest),
      chunkFrames: manifest.chunk_frames,
      fps: manifest.fps,
      levels: levelsFromManifest(manifest),
      upcoming: this.#upcoming(fetchChunk),
      lastLevel: this.lastFetchedLevel,
      lastQuality: this.lastQuality,
      throughputKbps: this.estimator.estimateKbps(),
      downloads: this.downloads.slice(),
      daemonFps: this.pace.fps,
      rebuffering,
    };
  }

  /** Whether fetching `level` next is a level switch (it needs the switch prefix). */
  switchesTo(level) {
    return level !== this.lastFetchedLevel;
  }

  /** A transfer the ABR learns from (the answer to the `get` in flight). */
  downloaded({ bytes, seconds, endS }) {
    this.downloads.push({ bytes, seconds, endS });
    if (this.downloads.length > DOWNLOAD_HISTORY) this.downloads.shift();
    this.estimator.addSample(seconds, bytes);
  }

  /** Ladder chunk `chunk` of `level` went to the daemon. */
  forwarded(chunk, level) {
    if (level !== this.lastFetchedLevel) this.bus.trigger(Events.LEVEL_SWITCHING, { level, auto: this.manualLevel === null });
    this.lastFetchedLevel = level;
    this.lastQuality = chunkQuality(chunkInfo(this.manifest, level, chunk) ?? {}, this.quality);
  }

  /** Virtual chunk `virtual` of `level` is in the buffer. */
  appended(virtual, level) {
    this.chunkLevels.set(virtual, level);
  }

  /** Whether any chunk went into the buffer since the channel started or the buffer was flushed. */
  get anyBuffered() {
    return this.chunkLevels.size > 0;
  }

  /** The buffer was flushed (a seek outside it): the ABR starts over. */
  flushed() {
    this.chunkLevels.clear();
    this.abr.reset();
  }

  /**
   * Read-only: the manual level, the level playing (null until a chunk went to the daemon), the
   * level asked for now (manual, else the ABR's last pick) and when it reaches the screen
   * (`bufferS`: seconds buffered ahead).
   */
  status(bufferS) {
    const manifest = this.manifest;
    const playing = manifest === null ? null : this.chunkLevels.get(this.timeline.atTime(this.video.currentTime)) ?? this.lastFetchedLevel;
    const chosen = manifest === null ? null
      : this.manualLevel !== null ? Math.min(this.manualLevel, manifest.levels.length - 1) : this.lastFetchedLevel;
    return {
      manualLevel: this.manualLevel,
      playingLevel: playing,
      chosenLevel: chosen,
      chosenOnScreenIn: this.#secondsUntilLevel(chosen, playing, bufferS),
    };
  }

  destroy() {
    this.abr?.destroy();
  }

  /**
   * Seconds until a chunk of `levelId` is on screen: {seconds, atLeast}; atLeast when no chunk of
   * that level is buffered yet (it comes after everything buffered). null when it is playing.
   */
  #secondsUntilLevel(levelId, playingId, bufferS) {
    if (levelId === null || levelId === playingId || this.timeline === null) return null;
    const playing = this.timeline.atTime(this.video.currentTime);
    let first = null;
    for (const [virtual, level] of this.chunkLevels) {
      if (level === levelId && virtual > playing && (first === null || virtual < first)) first = virtual;
    }
    if (first === null) return { seconds: bufferS, atLeast: true };
    return { seconds: Math.max(0, this.timeline.startS(first) - this.video.currentTime), atLeast: false };
  }

  /** ChunkOption[][] for the next ABR_HORIZON chunks from `fetchChunk` (across a loop's pass boundary). */
  #upcoming(fetchChunk) {
    const { manifest, timeline } = this;
    const upcoming = [];
    for (let virtual = fetchChunk; virtual < fetchChunk + ABR_HORIZON && timeline.has(virtual); virtual++) {
      const { chunk } = timeline.split(virtual);
      // a level with a gap there is offered as the level it would fall back to
      const levels = manifest.levels.map((level) => availableLevel(manifest, chunk, level.id));
      if (levels.includes(null)) break; // a chunk every level lacks is skipped, not chosen
      const options = levels.map((level) => chunkInfo(manifest, level, chunk));
      if (options.some((info) => info === undefined)) break; // a live ladder's edge
      upcoming.push(options.map((info) => ({ bytes: info.bytes, quality: chunkQuality(info, this.quality) })));
    }
    return upcoming;
  }
}

/**
 * The live controller: plays a live channel inside its window (the pure rules of
 * live-window.js) for the stream controller, which does the fetching.
 *
 * - A viewer joins LIVE_START_BEHIND chunks behind the live edge (a finished ladder at its
 *   window's start); nothing is fetched past the edge.
 * - Seeks are clamped to the window; a viewer that fell out of it (paused, or slower than the
 *   channel) jumps back to the live start, through the seek path.
 * - A chunk no level has (a gap in every level) is skipped: it counts as done, and the playhead
 *   jumps over the hole once it is GAP_JUMP_S (or two frames) from it and the rest is buffered.
 * - The seekable range of an endless duration: the window of a live channel, a looped ladder's
 *   chunks up to the end of the next pass (without it Chromium clamps a seek to the buffer).
 */
import { windowStart } from '../abr/context.js';
import { availableLevel, behindLiveS, clampSeek, liveStartChunk, seekableRange } from './live-window.js';

export const GAP_JUMP_S = 0.25; // the playhead this close (or two frames) to a skipped gap jumps over it

export class LiveController {
  /**
   * @param {{video: HTMLVideoElement, buffer: import('./buffer-controller.js').BufferController}} deps
   */
  constructor({ video, buffer }) {
    Object.assign(this, { video, buffer });
    this.reset();
  }

  /** A new channel: no manifest yet, nothing skipped. */
  reset() {
    this.manifest = null;
    this.timeline = null;
    this.skipped = new Set(); // virtual chunks skipped as gaps (no level has them)
  }

  /** The stream's manifest (each update) and its Timeline. */
  setManifest(manifest, timeline) {
    this.manifest = manifest;
    this.timeline = timeline;
  }

  /** Where a stream starts: a little behind a live edge, else its window's start (0 for a finished ladder). */
  startChunk() {
    return this.manifest.live ? liveStartChunk(this.manifest) : windowStart(this.manifest);
  }

  /** Where a seek to `targetS` may land (live: inside the window). */
  clampSeek(targetS) {
    return clampSeek(this.manifest, targetS);
  }

  /** Whether virtual chunk `virtual` has left a live window. */
  leftWindow(virtual) {
    return this.manifest.live && virtual < windowStart(this.manifest);
  }

  /** Whether virtual chunk `virtual` is past a live edge (not published yet). */
  pastEdge(virtual) {
    return this.manifest.live && virtual >= this.manifest.chunk_count;
  }

  /** Whether every level lacks ladder chunk `chunk` (a gap to skip). */
  isHole(chunk) {
    return availableLevel(this.manifest, chunk, 0) === null;
  }

  /** Fell out of a live window: start again near the live edge (through the seek path). */
  jumpToEdge() {
    if (this.manifest === null || !this.manifest.live) return;
    this.video.currentTime = this.timeline.startS(liveStartChunk(this.manifest));
  }

  skip(virtual) {
    this.skipped.add(virtual);
  }

  /** The last chunk done when `appendedThrough` is in the buffer: skipped gaps after it count as done. */
  doneThrough(appendedThrough) {
    let done = appendedThrough;
    while (this.skipped.has(done + 1)) done += 1;
    return done;
  }

  /** The buffer was flushed (a seek outside it): the skipped holes went with it. */
  clearSkipped() {
    this.skipped.clear();
  }

  /** Seekable range of an endless duration: a live ladder's window; a loop up to the next pass's end. */
  updateSeekable(appendedThrough) {
    const { timeline, manifest } = this;
    if (timeline === null) return;
    if (timeline.endless) {
      const pass = timeline.split(Math.max(appendedThrough, timeline.atTime(this.video.currentTime))).pass;
      this.buffer.setSeekableEnd((pass + 2) * timeline.passS);
    } else if (manifest.live) {
      const [startS, endS] = seekableRange(manifest);
      this.buffer.setSeekableEnd(endS, startS);
    }
  }

  /** One look at the playhead (the stream controller's tick): reached a skipped gap, continue after it. */
  poll() {
    if (this.skipped.size === 0 || this.video.seeking || this.timeline === null) return;
    // the element halts on the last frame before a hole: look a little more than a frame ahead
    const ahead = Math.max(GAP_JUMP_S, 2 / this.manifest.fps);
    let next = this.timeline.atTime(this.video.currentTime + ahead);
    if (!this.skipped.has(next)) return;
    while (this.skipped.has(next)) next += 1;
    const targetS = this.timeline.startS(next);
    if (this.buffer.isBuffered(targetS)) this.video.currentTime = targetS;
  }

  /** Read-only: seconds the playhead is behind a live channel's edge (null when not live). */
  status() {
    return { behindLiveS: this.manifest === null ? null : behindLiveS(this.manifest, this.video.currentTime) };
  }
}

/**
 * The player's timeline: chunk positions on the video element's clock. A finished ladder
 * played with `loop` repeats endlessly: pass k of chunk j is "virtual chunk" k * N + j and
 * plays at k * (stream duration) + j * (chunk duration), so playback, the ABR and the charts
 * run on without a break between passes. Without loop (or for a live ladder) virtual chunk
 * = ladder chunk and pass = 0. Pure.
 */
export class Timeline {
  /** @param {{chunk_count: number, chunk_frames: number, fps: number, frames: number, live: boolean}} manifest */
  constructor(manifest, loop) {
    this.chunkCount = manifest.chunk_count;
    this.chunkFrames = manifest.chunk_frames;
    this.fps = manifest.fps;
    this.frames = manifest.frames;
    // a finished live channel keeps only its last window: it cannot start over at chunk 0
    this.endless = Boolean(loop) && !manifest.live && manifest.chunk_count > 0 && !(manifest.window_start > 0);
  }

  /** Seconds of one pass through the ladder. */
  get passS() {
    return this.frames / this.fps;
  }

  /** Virtual chunk -> {pass, chunk} (chunk = index in the ladder). */
  split(virtual) {
    if (!this.endless) return { pass: 0, chunk: virtual };
    return { pass: Math.floor(virtual / this.chunkCount), chunk: virtual % this.chunkCount };
  }

  /** Whether `virtual` exists (a finished ladder without loop ends at its last chunk). */
  has(virtual) {
    return this.endless || virtual < this.chunkCount;
  }

  /** Seconds added to a segment's own timestamps (its tfdt is the chunk's place in the ladder). */
  offsetS(virtual) {
    return this.split(virtual).pass * this.passS;
  }

  /** Seconds on the video clock where `virtual` starts. */
  startS(virtual) {
    return this.offsetS(virtual) + (this.split(virtual).chunk * this.chunkFrames) / this.fps;
  }

  /** The virtual chunk playing at `timeS`. */
  atTime(timeS) {
    const pass = this.endless ? Math.max(0, Math.floor(timeS / this.passS)) : 0;
    const within = timeS - pass * this.passS;
    const chunk = Math.max(0, Math.min(Math.floor((within * this.fps) / this.chunkFrames), Math.max(0, this.chunkCount - 1)));
    return this.endless ? pass * this.chunkCount + chunk : chunk;
  }
}

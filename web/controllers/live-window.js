/**
 * A live channel's window, read from its manifest (docs/prompt-format.md): chunks
 * `[window_start, chunk_count)` are served, older ones have left the DVR window, and a chunk
 * of a level may be a *gap* (published as nothing: the page skips it). A finished ladder is a
 * window starting at 0 without gaps. Pure. The window's start and a chunk's facts by index
 * (`windowStart`, `chunkInfo`) are manifest readers the ABR shares: they live in abr/context.js.
 */

import { chunkInfo, windowStart } from '../abr/context.js';

export const LIVE_START_BEHIND = 3; // chunks behind a live ladder's edge to start at (HLS: three targets)

/** Whether chunk `index` of `levelId` is a gap (nothing published for it). */
export function isGap(manifest, levelId, index) {
  return chunkInfo(manifest, levelId, index)?.gap === true;
}

/**
 * The level to fetch for chunk `index` when the ABR wants `wanted`: that level unless it is a gap
 * there, else the nearest lower level that has the chunk, else the nearest higher one; null when
 * every level is a gap (the chunk is skipped).
 */
export function availableLevel(manifest, index, wanted) {
  const count = manifest.levels.length;
  for (let level = Math.min(wanted, count - 1); level >= 0; level--) {
    if (!isGap(manifest, level, index)) return level;
  }
  for (let level = wanted + 1; level < count; level++) {
    if (!isGap(manifest, level, index)) return level;
  }
  return null;
}

/** The chunk a viewer joining a live channel starts at: a little behind the edge, inside the window. */
export function liveStartChunk(manifest) {
  return Math.max(windowStart(manifest), manifest.chunk_count - LIVE_START_BEHIND);
}

/** Seconds of video per chunk. */
export function chunkSeconds(manifest) {
  return manifest.chunk_frames / manifest.fps;
}

/** [start, end] seconds a viewer may seek to: the window's first chunk to the live edge. */
export function seekableRange(manifest) {
  return [windowStart(manifest) * chunkSeconds(manifest), manifest.chunk_count * chunkSeconds(manifest)];
}

/**
 * Where a seek to `timeS` lands on a live channel: inside the window, and at least a chunk
 * before the edge so that something can be fetched. A finished ladder is not clamped.
 */
export function clampSeek(manifest, timeS) {
  if (!manifest.live) return timeS;
  const [startS, endS] = seekableRange(manifest);
  return Math.min(Math.max(timeS, startS), Math.max(startS, endS - chunkSeconds(manifest)));
}

/** Seconds between `timeS` and the live edge (end of the newest published chunk); null when not live. */
export function behindLiveS(manifest, timeS) {
  if (manifest === null || !manifest.live) return null;
  return Math.max(0, seekableRange(manifest)[1] - timeS);
}

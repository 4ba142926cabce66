/**
 * The ABR context (what every rule reads) and the small helpers the rules share.
 *
 * Everything here is pure: no DOM, no globals, no clock. The browser player and the
 * emulator (Node, virtual clock) build the same context and call the same rules.
 *
 * @typedef {object} LevelSummary
 * @property {number} id     index into the manifest's `levels` (ascending kbps)
 * @property {number} kbps   the level's average bitrate from the manifest
 *
 * @typedef {object} ChunkOption   one level's version of one upcoming chunk
 * @property {number} bytes            size of the chunk at that level (manifest `chunks[i].bytes`)
 * @property {number|null} quality     quality in the measure's unit (see `chunkQuality`: dB for SSIM and
 *                                     PSNR, VMAF points for VMAF), null when not measured
 *
 * @typedef {object} Download      one finished chunk transfer from the media server
 * @property {number} bytes     bytes received (prefix + chunk)
 * @property {number} seconds   request sent -> last byte received
 * @property {number} endS      clock time (same clock as `nowS`) when the last byte arrived
 *
 * @typedef {object} AbrContext
 * @property {number} nowS               current time in seconds (any origin; only differences matter)
 * @property {number} bufferS            seconds of playable video ahead of the playhead
 * @property {number} maxBufferS         buffer the player fills up to (Puffer: 15 s)
 * @property {number} chunkDurationS     seconds of video per chunk (chunk_frames / fps)
 * @property {number} chunkFrames        frames per chunk
 * @property {number} fps                the stream's frame rate
 * @property {LevelSummary[]} levels     every level, ascending kbps
 * @property {ChunkOption[][]} upcoming  upcoming[k][levelId]: the chunk being chosen (k = 0)
 *                                       and the ones after it, as far as the manifest goes
 * @property {number|null} lastLevel     level of the chunk fetched before (null at start / after a seek)
 * @property {number|null} lastQuality   quality of that chunk (the same measure), null when none
 * @property {number|null} throughputKbps  estimate from ThroughputEstimator (null = no sample yet)
 * @property {Download[]} downloads      recent transfers, oldest first
 * @property {number|null} daemonFps     frames per second the local daemon generates (null = unknown)
 * @property {boolean} rebuffering       true while playback is stalled waiting for video
 */

export const SSIM_DB_MAX = 60; // dB; Puffer clamps SSIM dB to [0, 60]
export const BANDWIDTH_SAFETY = 0.9; // dash.js bandwidthSafetyFactor
export const GENERATION_SAFETY = 0.9; // the daemon must generate >= fps / 0.9 frames per second
/**
 * dB of quality a level switch must buy. Each switch costs a switch prefix (a keyframe of the
 * new level sent in front of the chunk), and levels of a weak generator can be equal within
 * measurement noise or inverted chunk by chunk: without this margin BBA and MPC switched on
 * nearly every chunk of such a ladder for hundredths of a dB (issue 16).
 */
export const SWITCH_MARGIN_DB = 0.5;

/** SSIM index -> dB, -10 log10(1 - ssim), clamped to [0, 60] as in Puffer's abr_algo.cc. */
export function ssimDb(ssim) {
  if (ssim >= 1) return SSIM_DB_MAX;
  const db = -10 * Math.log10(1 - ssim);
  return Math.min(SSIM_DB_MAX, Math.max(0, db));
}

/**
 * The quality measures a player or the emulator may hand the rules (`?quality=`), each with the
 * manifest fields it reads in order: `ssim` (Puffer's: SSIM in dB, PSNR dB for a chunk without
 * SSIM), `psnr` (dB), `vmaf` (VMAF points 0..100, vmaf_v0.6.1, from `promptus ladder --vmaf`).
 */
export const QUALITY_MEASURES = Object.freeze({ ssim: ['ssim', 'psnr'], psnr: ['psnr'], vmaf: ['vmaf'] });
export const DEFAULT_QUALITY = 'ssim';

/** Which manifest field `chunkQuality` takes for a chunk entry under `measure` ('ssim', 'psnr', 'vmaf' or null). */
export function chunkQualityMetric(chunkInfo, measure = DEFAULT_QUALITY) {
  return QUALITY_MEASURES[measure].find((field) => chunkInfo[field] !== null && chunkInfo[field] !== undefined) ?? null;
}

/** Quality of a manifest chunk entry under `measure`: SSIM in dB, PSNR dB or VMAF; null when not measured. */
export function chunkQuality(chunkInfo, measure = DEFAULT_QUALITY) {
  const metric = chunkQualityMetric(chunkInfo, measure);
  if (metric === 'ssim') return ssimDb(chunkInfo.ssim);
  return metric === null ? null : chunkInfo[metric];
}

/**
 * Quality a rule uses for an option: its measured dB, or, when the ladder did not measure
 * quality, 10 log10(bytes) (bigger chunk = better; the same stand-in for every rule).
 */
export function effectiveQuality(option) {
  if (option.quality !== null && option.quality !== undefined) return option.quality;
  return 10 * Math.log10(Math.max(1, option.bytes));
}

/** Seconds the daemon needs to generate one chunk (0 when its speed is unknown). */
export function generationSeconds(ctx) {
  if (!(ctx.daemonFps > 0)) return 0;
  return ctx.chunkFrames / ctx.daemonFps;
}

/**
 * Whether the daemon keeps up with real time (with a 10% margin). When it does not, no level
 * is sustainable whatever the network says, and every rule except `fixed` falls back to the
 * lowest level (all levels cost the daemon the same UNet work per frame; the lowest at least
 * costs the network least).
 */
export function daemonKeepsUp(ctx) {
  if (!(ctx.daemonFps > 0)) return true;
  return ctx.daemonFps * GENERATION_SAFETY >= ctx.fps;
}

/** Highest level whose nominal kbps <= `kbps` (0 when none fits): dash.js getQualityForBitrate. */
export function levelForBitrate(levels, kbps) {
  let chosen = 0;
  for (let i = 0; i < levels.length; i++) {
    if (levels[i].kbps <= kbps) chosen = i;
  }
  return chosen;
}

/** Throws a clear error when a context is unusable (no levels, no upcoming chunk). */
export function checkContext(ctx) {
  if (!ctx || !Array.isArray(ctx.levels) || ctx.levels.length === 0) {
    throw new TypeError('ABR context has no levels');
  }
  if (!Array.isArray(ctx.upcoming) || ctx.upcoming.length === 0) {
    throw new TypeError('ABR context has no upcoming chunk');
  }
  if (ctx.upcoming[0].length !== ctx.levels.length) {
    throw new TypeError(`upcoming[0] has ${ctx.upcoming[0].length} options for ${ctx.levels.length} levels`);
  }
}

/** LevelSummary list of a manifest (manifest.json content, levels ascending kbps). */
export function levelsFromManifest(manifest) {
  return manifest.levels.map((level) => ({ id: level.id, kbps: level.kbps }));
}

/** First chunk a live window still lists (0 for a finished ladder, or a manifest written before the window existed). */
export function windowStart(manifest) {
  return manifest.window_start ?? 0;
}

/** The manifest's facts of chunk `index` of level `levelId` (a live window lists `window_start` on); undefined when not listed. */
export function chunkInfo(manifest, levelId, index) {
  const position = index - windowStart(manifest);
  return position < 0 ? undefined : manifest.levels[levelId]?.chunks[position];
}

/**
 * ChunkOption[][] for chunks `first`, `first + 1`, ... (at most `count`), stopping at the first
 * chunk some level does not list (before a live window's start, or past its edge) or publishes
 * as a gap. Chunks are found by index, not by position: a live window lists `window_start` on.
 * Their quality is `measure`'s (QUALITY_MEASURES).
 */
export function upcomingFromManifest(manifest, first, count, measure = DEFAULT_QUALITY) {
  const upcoming = [];
  for (let index = first; index < first + count; index++) {
    const options = [];
    for (const level of manifest.levels) {
      const info = chunkInfo(manifest, level.id, index);
      if (info === undefined || info.index !== index || info.gap === true) return upcoming;
      options.push({ bytes: info.bytes, quality: chunkQuality(info, measure) });
    }
    upcoming.push(options);
  }
  return upcoming;
}

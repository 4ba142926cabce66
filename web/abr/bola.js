/**
 * BOLA, as dash.js's BolaRule defines it (BOLA-O variant, arXiv 1601.06748).
 *
 * Utilities u_i = ln(kbps_i) shifted so the lowest level has u = 1. With a buffer target
 * T = max(stable buffer, 10 s + 2 s x levels), gp = (u_max - 1) / (T / 10 - 1), Vp = 10 / gp.
 * Score of level i at buffer B: (Vp (u_i + gp) - B) / kbps_i; the highest score wins (ties to
 * the higher level, as dash.js's `>=`).
 *
 * States: ONE_BITRATE (one level: always 0); STARTUP (pick by safe throughput, seed the
 * placeholder buffer so BOLA agrees with that choice; leave once a chunk's worth is buffered);
 * STEADY (score on buffer + placeholder; BOLA-O: never *raise* quality above what the safe
 * throughput sustains; the part of buffer + placeholder above the chosen level's useful
 * maximum is taken out of the placeholder). The placeholder buffer grows by the time the
 * player spent not downloading (buffer full), decays x0.99 per chunk, empties on a stall.
 * reset() (seek, channel switch) goes back to STARTUP. The daemon: if it cannot generate in
 * real time, the lowest level.
 */
import { BANDWIDTH_SAFETY, checkContext, daemonKeepsUp, levelForBitrate } from './context.js';

export const MINIMUM_BUFFER_S = 10; // dash.js: BOLA adds no artificial delay below this buffer
export const MINIMUM_BUFFER_PER_LEVEL_S = 2; // dash.js: target grows 2 s per level
export const PLACEHOLDER_DECAY = 0.99; // per chunk

export const State = Object.freeze({ ONE_BITRATE: 'one-bitrate', STARTUP: 'startup', STEADY: 'steady' });

/** Vp, gp and utilities for a ladder (null when one level: always the lowest). */
export function bolaParameters(kbpsList, stableBufferS) {
  if (kbpsList.length < 2) return null;
  const logs = kbpsList.map((b) => Math.log(b));
  const utilities = logs.map((u) => u - logs[0] + 1);
  const highest = utilities.reduce((best, u, i) => (u > utilities[best] ? i : best), 0);
  if (highest === 0) return null;
  const bufferTarget = Math.max(stableBufferS, MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_LEVEL_S * kbpsList.length);
  const gp = (utilities[highest] - 1) / (bufferTarget / MINIMUM_BUFFER_S - 1);
  const Vp = MINIMUM_BUFFER_S / gp;
  return { utilities, gp, Vp, bitrates: kbpsList.slice() };
}

/** Level with the best BOLA score at buffer level `bufferS`. */
export function levelFromBuffer(params, bufferS) {
  let best = 0;
  let bestScore = NaN;
  params.bitrates.forEach((kbps, i) => {
    const score = (params.Vp * (params.utilities[i] + params.gp) - bufferS) / kbps;
    if (Number.isNaN(bestScore) || score >= bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}

/** Buffer above which BOLA would rather wait than download `level`. */
export function maxBufferForLevel(params, level) {
  return params.Vp * (params.utilities[level] + params.gp);
}

/** Smallest buffer at which BOLA prefers `level` to every lower-utility level. */
export function minBufferForLevel(params, level) {
  const qKbps = params.bitrates[level];
  const qUtility = params.utilities[level];
  let min = 0;
  for (let i = level - 1; i >= 0; i--) {
    const iKbps = params.bitrates[i];
    const iUtility = params.utilities[i];
    if (iUtility < qUtility && iKbps !== qKbps) {
      const threshold = params.Vp * (params.gp + (qKbps * iUtility - iKbps * qUtility) / (qKbps - iKbps));
      min = Math.max(min, threshold);
    }
  }
  return min;
}

export class BolaRule {
  /**
   * @param {{stableBufferS?: number|null, safety?: number}} [options]
   *   stableBufferS: dash.js's stable buffer time (default: the context's maxBufferS)
   */
  constructor({ stableBufferS = null, safety = BANDWIDTH_SAFETY } = {}) {
    this.name = 'bola';
    this.stableBufferS = stableBufferS;
    this.safety = safety;
    this.reset();
  }

  /** @param {import('./context.js').AbrContext} ctx @returns {number} level id */
  chooseLevel(ctx) {
    checkContext(ctx);
    const params = bolaParameters(ctx.levels.map((l) => l.kbps), this.stableBufferS ?? ctx.maxBufferS);
    if (params === null) {
      this.state = State.ONE_BITRATE;
      return 0;
    }
    if (this.state === State.ONE_BITRATE) this.state = State.STARTUP;
    const safeKbps = ctx.throughputKbps === null || ctx.throughputKbps === undefined ? null : ctx.throughputKbps * this.safety;
    const throughputLevel = safeKbps === null ? 0 : levelForBitrate(ctx.levels, safeKbps);

    let level;
    if (this.state === State.STARTUP) {
      level = throughputLevel;
      this.placeholderS = Math.max(0, minBufferForLevel(params, level) - ctx.bufferS);
      if (ctx.bufferS >= ctx.chunkDurationS) this.state = State.STEADY;
    } else {
      this.#updatePlaceholder(ctx, params);
      level = levelFromBuffer(params, ctx.bufferS + this.placeholderS);
      // BOLA-O: do not climb above what the network sustains (avoids oscillation).
      if (level > this.lastLevel && level > throughputLevel) level = Math.max(throughputLevel, this.lastLevel);
      const excessS = Math.max(0, ctx.bufferS + this.placeholderS - maxBufferForLevel(params, level));
      this.placeholderS -= Math.min(excessS, this.placeholderS);
    }
    if (!daemonKeepsUp(ctx)) level = 0;
    this.lastLevel = level;
    this.lastCallS = ctx.nowS;
    return level;
  }

  #updatePlaceholder(ctx, params) {
    const downloads = ctx.downloads ?? [];
    const last = downloads.length > 0 ? downloads[downloads.length - 1] : null;
    const downloadedSinceLastCall = last !== null && this.lastCallS !== null && last.endS > this.lastCallS;
    if (downloadedSinceLastCall) {
      // A new chunk arrived: decay, and keep the placeholder within what was useful for it.
      this.placeholderS *= PLACEHOLDER_DECAY;
      const bufferAtRequest = ctx.bufferS + last.seconds;
      this.placeholderS = Math.min(this.placeholderS, Math.max(0, maxBufferForLevel(params, this.lastLevel) - bufferAtRequest));
    }
    if (this.lastCallS !== null) {
      // Time spent not downloading (buffer full, waiting) counts as placeholder buffer.
      const idleSince = downloadedSinceLastCall ? last.endS : this.lastCallS;
      this.placeholderS += Math.max(0, ctx.nowS - idleSince);
    }
    if (ctx.rebuffering) this.placeholderS = 0;
  }

  /** Back to STARTUP (seek, channel switch): dash.js does the same on PLAYBACK_SEEKING. */
  reset() {
    this.state = State.STARTUP;
    this.placeholderS = 0;
    this.lastLevel = 0;
    this.lastCallS = null;
  }

  destroy() {}
}

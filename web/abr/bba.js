/**
 * BBA, as Puffer runs it (`linear_bba`, reservoirs as fractions of a 15 s buffer; the paper's
 * experiments use 0.2 and 0.9, i.e. 3 s and 13.5 s).
 *
 * Below the lower reservoir: the smallest next chunk. At or above the upper reservoir: the
 * largest. In between, a size cap rises linearly from the smallest to the largest actual size
 * of the next chunk, and the rule picks the highest-quality chunk whose size is under the cap
 * (first, i.e. lowest, level on ties). If the daemon cannot generate in real time, the lowest
 * level (see context.js: daemonKeepsUp).
 *
 * Switches are not free here (each costs a switch prefix), so the previous level is kept when
 * it is as good as the choice: when it ties for the smallest or largest size, and when it fits
 * under the cap and the best option beats its quality by less than SWITCH_MARGIN_DB. (A chunk
 * holding no keyframe weighs the same at every level: the buffer then says nothing.)
 */
import { SWITCH_MARGIN_DB, checkContext, daemonKeepsUp, effectiveQuality } from './context.js';

export const LOWER_RESERVOIR = 0.2; // fraction of maxBufferS (3 s of 15 s)
export const UPPER_RESERVOIR = 0.9; // fraction of maxBufferS (13.5 s of 15 s)

export class BbaRule {
  /** @param {{lowerReservoir?: number, upperReservoir?: number}} [options] */
  constructor({ lowerReservoir = LOWER_RESERVOIR, upperReservoir = UPPER_RESERVOIR } = {}) {
    if (!(lowerReservoir >= 0 && upperReservoir > lowerReservoir && upperReservoir <= 1)) {
      throw new RangeError(`BBA reservoirs must satisfy 0 <= lower < upper <= 1, got ${lowerReservoir}, ${upperReservoir}`);
    }
    this.name = 'bba';
    this.lowerReservoir = lowerReservoir;
    this.upperReservoir = upperReservoir;
  }

  /** @param {import('./context.js').AbrContext} ctx @returns {number} level id */
  chooseLevel(ctx) {
    checkContext(ctx);
    if (!daemonKeepsUp(ctx)) return 0;
    const options = ctx.upcoming[0];
    const sizes = options.map((o) => o.bytes);
    const minSize = Math.min(...sizes);
    const maxSize = Math.max(...sizes);
    const lower = this.lowerReservoir * ctx.maxBufferS;
    const upper = this.upperReservoir * ctx.maxBufferS;

    const last = ctx.lastLevel ?? null;
    const keepOr = (level) => (last !== null && sizes[last] === sizes[level] ? last : level);
    if (ctx.bufferS < lower) return keepOr(sizes.indexOf(minSize));
    if (ctx.bufferS >= upper) return keepOr(sizes.indexOf(maxSize));

    const cap = minSize + ((maxSize - minSize) * (ctx.bufferS - lower)) / (upper - lower);
    let best = sizes.indexOf(minSize);
    let bestQuality = -Infinity;
    options.forEach((option, level) => {
      if (option.bytes > cap) return;
      const quality = effectiveQuality(option);
      if (quality > bestQuality) {
        best = level;
        bestQuality = quality;
      }
    });
    const lastFits = last !== null && last < options.length && options[last].bytes <= cap;
    if (lastFits && bestQuality - effectiveQuality(options[last]) < SWITCH_MARGIN_DB) return last;
    return best;
  }

  reset() {}

  destroy() {}
}

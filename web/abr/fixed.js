/**
 * The fixed-level rule: always the configured level (clamped to the ladder), whatever the
 * buffer, network or daemon say. A baseline for comparisons and the basis of manual override.
 */
import { checkContext } from './context.js';

export class FixedRule {
  /** @param {{level?: number}} [options] level id to hold (default 0, the lowest) */
  constructor({ level = 0 } = {}) {
    if (!Number.isInteger(level) || level < 0) throw new RangeError(`fixed level must be an integer >= 0, got ${level}`);
    this.name = 'fixed';
    this.level = level;
  }

  /** @param {import('./context.js').AbrContext} ctx @returns {number} level id */
  chooseLevel(ctx) {
    checkContext(ctx);
    return Math.min(this.level, ctx.levels.length - 1);
  }

  reset() {}

  destroy() {}
}

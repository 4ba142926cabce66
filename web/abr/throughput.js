/**
 * Throughput rule, as dash.js's ThroughputRule: the highest level whose nominal bitrate is at
 * most the safe throughput (estimate x 0.9). No estimate yet: the lowest level. The daemon
 * counts as a second pipe: if it cannot generate in real time, the lowest level.
 */
import { BANDWIDTH_SAFETY, checkContext, daemonKeepsUp, levelForBitrate } from './context.js';

export class ThroughputRule {
  /** @param {{safety?: number}} [options] fraction of the estimate considered safe (0.9) */
  constructor({ safety = BANDWIDTH_SAFETY } = {}) {
    if (!(safety > 0 && safety <= 1)) throw new RangeError(`safety must be in (0, 1], got ${safety}`);
    this.name = 'throughput';
    this.safety = safety;
  }

  /** @param {import('./context.js').AbrContext} ctx @returns {number} level id */
  chooseLevel(ctx) {
    checkContext(ctx);
    if (!daemonKeepsUp(ctx)) return 0;
    if (ctx.throughputKbps === null || ctx.throughputKbps === undefined) return 0;
    return levelForBitrate(ctx.levels, ctx.throughputKbps * this.safety);
  }

  reset() {}

  destroy() {}
}

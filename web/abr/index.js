/**
 * ABR rules: one file per algorithm behind one interface.
 *
 * Interface (every rule):
 *   rule.name                       'bba' | 'mpc' | 'throughput' | 'bola' | 'fixed'
 *   rule.chooseLevel(ctx) -> number the level id for the chunk `ctx.upcoming[0]`
 *   rule.reset()                    forget per-stream state (seek, channel switch)
 *   rule.destroy()                  release anything held (nothing today; call it anyway)
 *
 * `ctx` is an AbrContext (typedef in ./context.js): buffer, throughput estimate and recent
 * transfers, next chunks' sizes and qualities per level, the daemon's generation speed,
 * the previous level and quality, and `nowS`. Time is passed in, never read inside: the
 * same rules run in the browser (performance.now()) and under Node on a virtual clock
 * (emulation/). Rules never touch the DOM or globals.
 *
 * Every rule except `fixed` drops to the lowest level when the daemon cannot generate in
 * real time (context.js: daemonKeepsUp), and MPC adds the generation time to each chunk's
 * time to playable.
 */
import { BbaRule } from './bba.js';
import { BolaRule } from './bola.js';
import { FixedRule } from './fixed.js';
import { MpcRule } from './mpc.js';
import { ThroughputRule } from './throughput.js';

export { ThroughputEstimator } from './throughput-estimator.js';
export { chunkQuality, chunkQualityMetric, DEFAULT_QUALITY, levelsFromManifest, QUALITY_MEASURES, ssimDb, upcomingFromManifest } from './context.js';

/** Rule classes by the names used in URLs (?abr=), the CLI and reports. */
export const ABR_RULES = Object.freeze({
  bba: BbaRule,
  mpc: MpcRule,
  throughput: ThroughputRule,
  bola: BolaRule,
  fixed: FixedRule,
});

export const ABR_NAMES = Object.freeze(Object.keys(ABR_RULES));
export const DEFAULT_ABR = 'mpc';

/**
 * Builds the rule called `name` with its options (see each class).
 * @param {string} name
 * @param {object} [options]
 */
export function createAbr(name, options = {}) {
  const Rule = ABR_RULES[name];
  if (Rule === undefined) {
    throw new RangeError(`unknown ABR '${name}' (known: ${ABR_NAMES.join(', ')})`);
  }
  return new Rule(options);
}

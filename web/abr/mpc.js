/**
 * RobustMPC-HM, as Puffer's `mpc.cc` (robust_mpc) defines it, plus the daemon.
 *
 * QoE of a plan = sum over the next H chunks of
 *     quality_dB - LAMBDA * |quality_dB - previous quality_dB| - MU * stall seconds
 * with LAMBDA = 1, MU = 100 (the paper's settings) and H = 5 (clipped to the chunks the
 * manifest lists ahead), minus SWITCH_MARGIN_DB for each level switch in the plan (ours: a
 * switch costs a switch prefix, and a ladder's levels may differ by less than measurement
 * noise; without it MPC switched on nearly every chunk of such a ladder). Solved by dynamic programming over a buffer discretised into 100
 * steps of maxBufferS (Puffer: 15 s / 100 = 0.15 s), ties to the lower level.
 *
 * Sending time of a chunk = bytes x predicted seconds-per-byte. The prediction is Puffer's:
 * the mean seconds-per-byte of the last 5 transfers (a harmonic mean of throughput), rolled
 * forward over the horizon (each step's prediction joins the window of the next), and, being
 * "robust", multiplied by (1 + the largest relative error |1 - predicted/actual throughput|
 * of the last 5 transfers). Each past error is recomputed from the downloads that preceded
 * the transfer, so the rule keeps no hidden state. No transfer yet: a huge sending time, so
 * the smallest chunks win (Puffer's HIGH_SENDING_TIME).
 *
 * The daemon: a chunk is playable only after the daemon generated it. Download and
 * generation run as a pipeline (the player fetches chunk k+1 while the daemon generates
 * chunk k), so a chunk's time to playable is max(sending time, chunk_frames / daemon fps).
 * A daemon slower than real time makes every level unsustainable: the lowest level.
 */
import { SWITCH_MARGIN_DB, checkContext, daemonKeepsUp, effectiveQuality, generationSeconds } from './context.js';

export const HORIZON = 5; // chunks looked ahead
export const PAST_WINDOW = 5; // transfers in the throughput prediction and in the error max
export const QUALITY_CHANGE_COEFF = 1; // lambda: dB of QoE per dB of quality change
export const STALL_COEFF = 100; // mu: dB of QoE per second of stall
export const BUFFER_STEPS = 100; // buffer discretisation over maxBufferS
export const HIGH_SENDING_TIME_S_PER_BYTE = 10000; // Puffer's default before any transfer

/**
 * Predicted seconds-per-byte for each of the next `horizon` chunks, and the robust factor.
 * @param {import('./context.js').Download[]} downloads oldest first
 * @returns {{perByte: number[], maxError: number}}
 */
export function predictSecondsPerByte(downloads, horizon, robust = true) {
  const usable = downloads.filter((d) => d.bytes > 0 && d.seconds > 0);
  const past = usable.slice(-PAST_WINDOW).map((d) => d.seconds / d.bytes);
  if (past.length === 0) {
    return { perByte: new Array(horizon).fill(HIGH_SENDING_TIME_S_PER_BYTE), maxError: 0 };
  }
  const maxError = robust ? maxPredictionError(usable) : 0;
  const series = past.slice(); // past values, then each step's prediction
  const perByte = [];
  for (let i = 0; i < horizon; i++) {
    const recent = series.slice(-past.length);
    const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
    const predicted = mean * (1 + maxError);
    perByte.push(predicted);
    series.push(predicted);
  }
  return { perByte, maxError };
}

/** Largest |1 - predicted/actual throughput| over the last PAST_WINDOW transfers that had a prediction. */
export function maxPredictionError(downloads) {
  let maxError = 0;
  const start = Math.max(1, downloads.length - PAST_WINDOW);
  for (let k = start; k < downloads.length; k++) {
    const before = downloads.slice(Math.max(0, k - PAST_WINDOW), k);
    const meanPerByte = before.reduce((a, d) => a + d.seconds / d.bytes, 0) / before.length;
    const predictedThroughput = 1 / meanPerByte; // bytes per second
    const actualPerByte = downloads[k].seconds / downloads[k].bytes;
    maxError = Math.max(maxError, Math.abs(1 - predictedThroughput * actualPerByte));
  }
  return maxError;
}

export class MpcRule {
  /**
   * @param {{horizon?: number, qualityChangeCoeff?: number, stallCoeff?: number, switchCost?: number, robust?: boolean}} [options]
   *   switchCost: dB of QoE a level switch costs (0: Puffer's MPC)
   */
  constructor({
    horizon = HORIZON,
    qualityChangeCoeff = QUALITY_CHANGE_COEFF,
    stallCoeff = STALL_COEFF,
    switchCost = SWITCH_MARGIN_DB,
    robust = true,
  } = {}) {
    if (!Number.isInteger(horizon) || horizon < 1) throw new RangeError(`horizon must be an integer >= 1, got ${horizon}`);
    this.name = 'mpc';
    this.horizon = horizon;
    this.qualityChangeCoeff = qualityChangeCoeff;
    this.stallCoeff = stallCoeff;
    this.switchCost = switchCost;
    this.robust = robust;
  }

  /** @param {import('./context.js').AbrContext} ctx @returns {number} level id */
  chooseLevel(ctx) {
    checkContext(ctx);
    if (!daemonKeepsUp(ctx)) return 0;
    const horizon = Math.min(this.horizon, ctx.upcoming.length);
    const levelCount = ctx.levels.length;
    const unit = ctx.maxBufferS / BUFFER_STEPS;
    const discretize = (b) => Math.min(BUFFER_STEPS, Math.floor((b + unit * 0.5) / unit));
    const { perByte } = predictSecondsPerByte(ctx.downloads ?? [], horizon, this.robust);
    const genS = generationSeconds(ctx);

    // quality[i][j], sending[i][j] for steps i = 1..horizon (step i is upcoming[i - 1]).
    const quality = [null];
    const sending = [null];
    for (let i = 1; i <= horizon; i++) {
      const options = ctx.upcoming[i - 1];
      quality.push(options.map((o) => effectiveQuality(o)));
      sending.push(options.map((o) => Math.max(o.bytes * perByte[i - 1], genS)));
    }
    const isInit = ctx.lastQuality === null || ctx.lastQuality === undefined;
    quality[0] = [isInit ? 0 : ctx.lastQuality];

    // Puffer's DP: value(i, buffer, format) = best QoE from step i on, having played `format` at step i.
    const memo = new Map();
    const bestNext = (i, bufferStep, format) => {
      let bestFormat = -1;
      let bestValue = 0;
      const current = quality[i][format];
      const level = i === 0 ? ctx.lastLevel ?? null : format; // step 0 stands for the chunk before
      for (let next = 0; next < levelCount; next++) {
        const rebuffer = sending[i + 1][next] - bufferStep * unit;
        const nextStep = discretize(Math.max(0, -rebuffer) + ctx.chunkDurationS);
        let q = current - this.stallCoeff * Math.max(0, rebuffer) + value(i + 1, nextStep, next);
        if (!(isInit && i === 0)) q -= this.qualityChangeCoeff * Math.abs(current - quality[i + 1][next]);
        if (level !== null && next !== level) q -= this.switchCost;
        if (bestFormat === -1 || q > bestValue) {
          bestFormat = next;
          bestValue = q;
        }
      }
      return { format: bestFormat, value: bestValue };
    };
    const value = (i, bufferStep, format) => {
      if (i === horizon) return quality[i][format];
      const key = (i * (BUFFER_STEPS + 1) + bufferStep) * levelCount + format;
      let cached = memo.get(key);
      if (cached === undefined) {
        cached = bestNext(i, bufferStep, format).value;
        memo.set(key, cached);
      }
      return cached;
    };
    return bestNext(0, discretize(ctx.bufferS), 0).format;
  }

  reset() {}

  destroy() {}
}

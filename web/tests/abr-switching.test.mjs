// Issue 16: levels equal within measurement noise, or inverted chunk by chunk, and chunks that
// weigh the same at every level (no keyframe inside) must not make BBA or MPC switch on nearly
// every chunk; a real quality step still makes them switch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BbaRule } from '../abr/bba.js';
import { MpcRule } from '../abr/mpc.js';
import { SWITCH_MARGIN_DB, ssimDb } from '../abr/context.js';
import { context, downloads } from './helpers.mjs';

// The README's sky-tiny ladder (tiny-taesd): a 2 s chunk with 7 keyframes, then a 1-frame chunk.
const LEVELS = [21.1, 39.8, 83.0].map((kbps, id) => ({ id, kbps }));
const KEYFRAMES = [5290, 10039, 21021].map((bytes, i) => ({ bytes, quality: ssimDb([0.14223, 0.15289, 0.14633][i]) }));
const ONE_FRAME = [0.12109, 0.13372, 0.12809].map((ssim) => ({ bytes: 75, quality: ssimDb(ssim) }));

const RTT_S = 0.08;
const LINK_BYTES_PER_S = 50000; // 400 kbit/s

/**
 * The levels a rule picks for `chunks` chunks alternating as in that ladder, at a steady buffer,
 * each transfer taking one RTT plus its bytes at the link rate (the 75 B chunks are all RTT).
 */
function play(rule, { bufferS, chunks = 40 }) {
  const picked = [];
  const history = [];
  let last = null;
  for (let k = 0; k < chunks; k++) {
    const cycle = k % 2 === 0 ? [KEYFRAMES, ONE_FRAME] : [ONE_FRAME, KEYFRAMES];
    const upcoming = [cycle[0], cycle[1], cycle[0], cycle[1], cycle[0]];
    const level = rule.chooseLevel(context({
      nowS: 100 + k, bufferS, levels: LEVELS, upcoming, lastLevel: last,
      lastQuality: last === null ? null : upcoming[0][last].quality,
      downloads: history.slice(-8), throughputKbps: 400,
    }));
    const bytes = upcoming[0][level].bytes;
    history.push({ bytes, seconds: RTT_S + bytes / LINK_BYTES_PER_S, endS: 100 + k });
    picked.push(level);
    last = level;
  }
  return picked;
}

const switches = (levels) => levels.slice(1).filter((level, i) => level !== levels[i]).length;

test('BBA holds its level on a near-equal ladder at any steady buffer', () => {
  for (const bufferS of [2, 5, 8, 11, 14]) {
    const picked = play(new BbaRule(), { bufferS });
    assert.ok(switches(picked) <= 1, `buffer ${bufferS} s: ${picked.join('')}`);
  }
});

test('MPC holds its level on a near-equal ladder', () => {
  for (const bufferS of [2, 8, 14]) {
    const picked = play(new MpcRule(), { bufferS });
    assert.ok(switches(picked) <= 1, `buffer ${bufferS} s: ${picked.join('')}`);
  }
});

test('BBA: a chunk that weighs the same at every level keeps the level (no tie to level 0)', () => {
  const bba = new BbaRule();
  for (const bufferS of [1, 8, 14]) {
    assert.equal(bba.chooseLevel(context({ bufferS, levels: LEVELS, upcoming: [ONE_FRAME], lastLevel: 2 })), 2);
  }
  assert.equal(bba.chooseLevel(context({ bufferS: 14, levels: LEVELS, upcoming: [ONE_FRAME] })), 0); // no last level: the first
});

test('BBA and MPC still switch for a quality step at least the margin', () => {
  // A third, big level sets BBA's cap: at 8.25 s it is 62500 B, so levels 0 and 1 fit.
  const options = (gain) => [
    { bytes: 25000, quality: 10 }, { bytes: 50000, quality: 10 + gain }, { bytes: 100000, quality: 10 },
  ];
  const step = options(SWITCH_MARGIN_DB);
  const small = options(SWITCH_MARGIN_DB / 2);
  const levels = [{ id: 0, kbps: 100 }, { id: 1, kbps: 200 }, { id: 2, kbps: 400 }];
  const ctx = (upcoming) => context({ bufferS: 8.25, levels, upcoming: [upcoming], lastLevel: 0, lastQuality: 10 });
  assert.equal(new BbaRule().chooseLevel(ctx(step)), 1);
  assert.equal(new BbaRule().chooseLevel(ctx(small)), 0);
  const many = (options) => context({
    bufferS: 10, levels, upcoming: Array(5).fill(options), lastLevel: 0, lastQuality: 10,
    downloads: downloads(5, 50000, 0.1), throughputKbps: 4000,
  });
  assert.equal(new MpcRule().chooseLevel(many(step)), 1); // 5 chunks x 0.5 dB buy the switch
  assert.equal(new MpcRule({ switchCost: 0 }).chooseLevel(many(small)), 1); // Puffer's MPC: any gain
  assert.equal(new MpcRule({ switchCost: 5 }).chooseLevel(many(step)), 0);
});

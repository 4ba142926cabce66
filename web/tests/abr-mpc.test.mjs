import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MpcRule, maxPredictionError, predictSecondsPerByte } from '../abr/mpc.js';
import { context, downloads } from './helpers.mjs';

const mpc = new MpcRule();
// 400 kbps steady: 100000 B per 2 s, so levels take 0.5 / 1 / 2 / 4 s per chunk.
const steady400 = downloads(5, 100000, 2);

test('no transfer yet: sending time is huge, the smallest chunk wins', () => {
  assert.equal(mpc.chooseLevel(context({ bufferS: 10 })), 0);
});

test('a fast network and a full buffer: the top level', () => {
  assert.equal(mpc.chooseLevel(context({ bufferS: 10, downloads: downloads(5, 200000, 0.1) })), 3);
});

test('steady 400 kbps: decisions follow the QoE (quality - |change| - 100 x stall)', () => {
  const at = (bufferS) => mpc.chooseLevel(context({ bufferS, downloads: steady400, lastQuality: 14 }));
  assert.equal(at(0), 0); // every level stalls; 0.5 s of stall is the least
  assert.equal(at(1), 1); // level 1 takes exactly the 1 s buffered: no stall
  assert.equal(at(3), 2);
  // 10 s: L2 then four L3 (no stall, one change) beats starting with L3 (two changes).
  assert.equal(at(10), 2);
  assert.equal(at(12), 3); // five L3 chunks drain 12 s to 2 s: no stall
});

test('prediction: harmonic mean rolled over the horizon, times (1 + max error)', () => {
  const history = [
    { bytes: 100000, seconds: 1, endS: 1 },
    { bytes: 100000, seconds: 2, endS: 3 },
  ];
  // Transfer 2 was predicted at 1e5 B/s and ran at 5e4 B/s: error |1 - 2| = 1.
  assert.ok(Math.abs(maxPredictionError(history) - 1) < 1e-12);
  const { perByte, maxError } = predictSecondsPerByte(history, 3);
  assert.ok(Math.abs(maxError - 1) < 1e-12);
  const expected = [3e-5, 5e-5, 8e-5]; // mean(1e-5, 2e-5) x 2; mean(2e-5, 3e-5) x 2; mean(3e-5, 5e-5) x 2
  perByte.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `${v} != ${expected[i]}`));
  assert.deepEqual(predictSecondsPerByte([], 2).perByte, [10000, 10000]);
});

test('the robust discount makes a volatile network conservative', () => {
  const volatile = [1, 3, 1, 3, 2].map((seconds, i) => ({ bytes: 100000, seconds, endS: 90 + i }));
  const ctx = context({ bufferS: 8, downloads: volatile, lastQuality: 14 });
  assert.equal(new MpcRule({ robust: false }).chooseLevel(ctx), 2);
  assert.equal(mpc.chooseLevel(ctx), 0); // max error 2: predicted times x3
});

test('the daemon: too slow means the lowest; otherwise generation time joins the sending time', () => {
  const fast = downloads(5, 200000, 0.1);
  assert.equal(mpc.chooseLevel(context({ bufferS: 10, downloads: fast, daemonFps: 20 })), 0);
  // Empty buffer, fast network: without the daemon, L2 (0.05 s stall) beats L3 (0.1 s).
  assert.equal(mpc.chooseLevel(context({ bufferS: 0, downloads: fast, lastQuality: 15 })), 2);
  // A 34 fps daemon needs 1.76 s per chunk at any level: the stall is the same, quality decides.
  assert.equal(mpc.chooseLevel(context({ bufferS: 0, downloads: fast, lastQuality: 15, daemonFps: 34 })), 3);
});

test('horizon clipped to the chunks listed ahead; ties go to the lower level', () => {
  const oneAhead = (lastQuality) => {
    const ctx = context({ bufferS: 12, downloads: steady400, lastQuality });
    return mpc.chooseLevel({ ...ctx, upcoming: ctx.upcoming.slice(0, 1) });
  };
  assert.equal(oneAhead(15), 3); // 15 + 15 beats 15 - 1 + 14
  assert.equal(oneAhead(14), 2); // 14 - 1 + 15 ties 14 + 14: the lower level
  assert.throws(() => new MpcRule({ horizon: 0 }), RangeError);
});

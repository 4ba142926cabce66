import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BbaRule } from '../abr/bba.js';
import { BYTES, context, options } from './helpers.mjs';

const bba = new BbaRule();

test('below the 3 s reservoir: the smallest chunk', () => {
  assert.equal(bba.chooseLevel(context({ bufferS: 2.99 })), 0);
});

test('at the 13.5 s upper reservoir and above: the largest chunk', () => {
  assert.equal(bba.chooseLevel(context({ bufferS: 13.5 })), 3);
  assert.equal(bba.chooseLevel(context({ bufferS: 15 })), 3);
});

test('between the reservoirs: best quality under the linear size cap', () => {
  // cap = 25000 + 175000 * (5 - 3) / 10.5 = 58333 B: levels 0 and 1 fit.
  assert.equal(bba.chooseLevel(context({ bufferS: 5 })), 1);
  // cap = 25000 + 175000 * (8.25 - 3) / 10.5 = 112500 B: levels 0..2 fit.
  assert.equal(bba.chooseLevel(context({ bufferS: 8.25 })), 2);
  // cap exactly 100000 B at 7.5 s: level 2 (100000 B) fits (<=).
  assert.equal(bba.chooseLevel(context({ bufferS: 7.5 })), 2);
  assert.equal(bba.chooseLevel(context({ bufferS: 7.49 })), 1);
});

test('picks by quality, not size: a bigger chunk with worse quality loses', () => {
  const ctx = context({ bufferS: 8.25, upcoming: [options(BYTES, [10, 12, 11, 15])] });
  assert.equal(bba.chooseLevel(ctx), 1);
});

test('sizes are per chunk: a small top-level chunk is taken early', () => {
  // The top level's next chunk is tiny (a static scene): it is the largest-quality option under the cap.
  const ctx = context({ bufferS: 4, upcoming: [options([25000, 50000, 100000, 30000], [10, 12, 14, 15])] });
  // cap = 25000 + (100000 - 25000) * 1 / 10.5 = 32142 B: levels 0 and 3 fit.
  assert.equal(bba.chooseLevel(ctx), 3);
});

test('unmeasured quality falls back to size', () => {
  const ctx = context({ bufferS: 8.25, upcoming: [options(BYTES, [null, null, null, null])] });
  assert.equal(bba.chooseLevel(ctx), 2);
});

test('a daemon slower than real time makes every level unsustainable: the lowest', () => {
  assert.equal(bba.chooseLevel(context({ bufferS: 14, daemonFps: 30 })), 0); // 30 x 0.9 < 30 fps
  assert.equal(bba.chooseLevel(context({ bufferS: 14, daemonFps: 34 })), 3); // 34 x 0.9 >= 30 fps
});

test('custom reservoirs and bad ones', () => {
  const wide = new BbaRule({ lowerReservoir: 0.1, upperReservoir: 0.5 });
  assert.equal(wide.chooseLevel(context({ bufferS: 7.5 })), 3);
  assert.throws(() => new BbaRule({ lowerReservoir: 0.9, upperReservoir: 0.2 }), RangeError);
});

test('a context without levels is refused with a clear message', () => {
  assert.throws(() => bba.chooseLevel(context({ levels: [] })), /no levels/);
  assert.throws(() => bba.chooseLevel(context({ upcoming: [] })), /no upcoming chunk/);
});

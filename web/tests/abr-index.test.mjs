import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ABR_NAMES, createAbr, upcomingFromManifest, levelsFromManifest } from '../abr/index.js';
import { ssimDb, chunkQuality, chunkQualityMetric } from '../abr/context.js';
import { context } from './helpers.mjs';

test('every named rule is built and answers with a level id', () => {
  assert.deepEqual(ABR_NAMES, ['bba', 'mpc', 'throughput', 'bola', 'fixed']);
  for (const name of ABR_NAMES) {
    const rule = createAbr(name);
    assert.equal(rule.name, name);
    const level = rule.chooseLevel(context({ throughputKbps: 500, downloads: [{ bytes: 1e5, seconds: 1, endS: 99 }] }));
    assert.ok(Number.isInteger(level) && level >= 0 && level < 4, `${name} -> ${level}`);
    rule.reset();
    rule.destroy();
  }
  assert.throws(() => createAbr('pensieve'), /unknown ABR 'pensieve' \(known: bba, mpc, throughput, bola, fixed\)/);
});

test('quality in dB: SSIM dB (clamped), else PSNR, else null', () => {
  assert.ok(Math.abs(ssimDb(0.9) - 10) < 1e-12);
  assert.equal(ssimDb(1), 60);
  assert.equal(ssimDb(-0.5), 0);
  assert.equal(chunkQuality({ ssim: 0.99, psnr: 31 }), ssimDb(0.99));
  assert.equal(chunkQuality({ ssim: null, psnr: 31 }), 31);
  assert.equal(chunkQuality({ ssim: null, psnr: null }), null);
  // the other measures a player may ask for (?quality=): each reads its own field only
  const info = { ssim: 0.99, psnr: 31, vmaf: 71.5 };
  assert.equal(chunkQuality(info, 'vmaf'), 71.5);
  assert.equal(chunkQuality(info, 'psnr'), 31);
  assert.equal(chunkQuality({ ssim: 0.99, psnr: 31 }, 'vmaf'), null);
  assert.equal(chunkQualityMetric(info, 'vmaf'), 'vmaf');
  assert.equal(chunkQualityMetric({ ssim: null, psnr: 31 }), 'psnr');
});

test('upcoming options from a manifest stop at a live edge', () => {
  const manifest = {
    levels: [
      { id: 0, kbps: 100, chunks: [{ index: 0, bytes: 10, ssim: 0.9, psnr: null }, { index: 1, bytes: 11, ssim: null, psnr: 30 }] },
      { id: 1, kbps: 200, chunks: [{ index: 0, bytes: 20, ssim: null, psnr: null }] },
    ],
  };
  assert.deepEqual(levelsFromManifest(manifest), [{ id: 0, kbps: 100 }, { id: 1, kbps: 200 }]);
  const upcoming = upcomingFromManifest(manifest, 0, 5);
  assert.equal(upcoming.length, 1); // level 1 lists no chunk 1 yet
  assert.equal(upcoming[0][0].bytes, 10);
  assert.ok(Math.abs(upcoming[0][0].quality - 10) < 1e-12);
  assert.equal(upcoming[0][1].quality, null);
});

test('upcoming options of a live window are found by chunk index and stop at a gap', () => {
  const chunk = (index, bytes, gap = false) => ({ index, bytes, ssim: null, psnr: 30, ...(gap ? { gap } : {}) });
  const manifest = {
    live: true,
    window_start: 7, // chunks 0-6 left the window: chunks[0] is chunk 7
    levels: [
      { id: 0, kbps: 100, chunks: [chunk(7, 10), chunk(8, 11), chunk(9, 12), chunk(10, 13)] },
      { id: 1, kbps: 200, chunks: [chunk(7, 20), chunk(8, 21), chunk(9, 0, true), chunk(10, 23)] },
    ],
  };
  assert.deepEqual(upcomingFromManifest(manifest, 6, 5), []); // before the window
  const upcoming = upcomingFromManifest(manifest, 7, 5);
  assert.deepEqual(upcoming.map((options) => options.map((o) => o.bytes)), [[10, 20], [11, 21]]);
  assert.deepEqual(upcomingFromManifest(manifest, 10, 5).map((options) => options[1].bytes), [23]);
});

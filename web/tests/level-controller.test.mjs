// The level controller's choices (manual, ABR, gap fallback), what it keeps for the ABR, its status;
// and the daemon's pace (measured, else reported; a closed daemon takes both with it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { ThroughputEstimator } from '../abr/throughput-estimator.js';
import { DOWNLOAD_HISTORY, LevelController } from '../controllers/level-controller.js';
import { DaemonPace } from '../controllers/daemon-pace.js';
import { Timeline } from '../controllers/timeline.js';

/** 3 levels, 6 chunks of 1 s; `gaps` = {level: [chunk, ...]}. */
function manifest(gaps = {}) {
  return {
    fps: 10, chunk_frames: 10, chunk_count: 6, frames: 60, live: true, window_start: 0,
    levels: [0, 1, 2].map((id) => ({
      id, name: `l${id}`, kbps: 100 * (id + 1),
      chunks: Array.from({ length: 6 }, (_, index) => ((gaps[id] ?? []).includes(index)
        ? { index, bytes: 0, gap: true } : { index, bytes: 1000 * (id + 1), ssim: 0.5 + 0.1 * id, psnr: null })),
    })),
  };
}

function setup({ gaps = {}, manualLevel = null, pick = 2 } = {}) {
  const bus = new EventBus();
  const switches = [];
  bus.on(Events.LEVEL_SWITCHING, (p) => switches.push(p));
  const contexts = [];
  const abr = { chooseLevel: (ctx) => (contexts.push(ctx), pick), reset: () => contexts.push('reset'), destroy: () => {} };
  const video = { currentTime: 0 };
  const pace = new DaemonPace(bus);
  const estimator = new ThroughputEstimator();
  const levels = new LevelController(bus, { video, estimator, abr, pace, manualLevel });
  const m = manifest(gaps);
  levels.setManifest(m, new Timeline(m, false));
  const inputs = { nowS: 3, fetchChunk: 0, bufferS: 2, maxBufferS: 15, rebuffering: false };
  return { bus, levels, pace, estimator, video, switches, contexts, inputs };
}

test('manual level: clamped to the ladder, no ABR context built; a gap gives way to a lower level', () => {
  const { levels, inputs } = setup({ manualLevel: 7, gaps: { 2: [1] } });
  const asked = [];
  const context = () => (asked.push(1), levels.abrContext(inputs));
  assert.equal(levels.choose(0, context), 2);
  assert.equal(levels.choose(1, context), 1);
  assert.deepEqual(asked, []);
});

test('ABR: the rule picks on the context; nothing to choose from past the described chunks', () => {
  const { levels, contexts, inputs, pace } = setup({ pick: 2, gaps: { 2: [0] } });
  pace.sample(500, 10);
  assert.equal(levels.choose(0, () => levels.abrContext(inputs)), 1); // level 2 has a gap at chunk 0
  const ctx = contexts.at(-1);
  assert.deepEqual(ctx.upcoming.length, 5);
  assert.deepEqual(ctx.upcoming[0].map((o) => o.bytes), [1000, 2000, 2000]); // offered as its fallback
  assert.equal(ctx.chunkDurationS, 1);
  assert.equal(ctx.daemonFps, 20);
  assert.equal(ctx.bufferS, 2);
  assert.equal(levels.choose(6, () => levels.abrContext({ ...inputs, fetchChunk: 6 })), null);
});

test('transfers: the last eight are kept and sampled; a forwarded chunk switches level once', () => {
  const { levels, estimator, switches, contexts, inputs } = setup();
  for (let i = 0; i < 10; i++) levels.downloaded({ bytes: 1000 * (i + 1), seconds: 0.5, endS: i });
  assert.equal(levels.abrContext(inputs).downloads.length, DOWNLOAD_HISTORY);
  assert.equal(levels.abrContext(inputs).downloads[0].endS, 2);
  assert.equal(estimator.samples, 10);
  assert.equal(levels.switchesTo(1), true);
  levels.forwarded(0, 1);
  levels.forwarded(1, 1);
  assert.deepEqual(switches, [{ level: 1, auto: true }]);
  assert.equal(levels.switchesTo(1), false);
  const ctx = levels.abrContext(inputs);
  assert.deepEqual([ctx.lastLevel, ctx.lastQuality.toFixed(2)], [1, '3.98']); // SSIM 0.6 in dB
  levels.flushed();
  assert.equal(contexts.at(-1), 'reset');
});

test('status: the level playing, the level chosen and when it reaches the screen', () => {
  const { levels, video } = setup({ manualLevel: 2 });
  assert.deepEqual(levels.status(0), { manualLevel: 2, playingLevel: null, chosenLevel: 2, chosenOnScreenIn: { seconds: 0, atLeast: true } });
  levels.forwarded(0, 0);
  levels.appended(0, 0);
  levels.appended(1, 0);
  assert.equal(levels.anyBuffered, true);
  assert.deepEqual(levels.status(2).chosenOnScreenIn, { seconds: 2, atLeast: true });
  levels.appended(2, 2);
  video.currentTime = 0.25;
  assert.deepEqual(levels.status(2), { manualLevel: 2, playingLevel: 0, chosenLevel: 2, chosenOnScreenIn: { seconds: 1.75, atLeast: false } });
  video.currentTime = 2.5;
  assert.equal(levels.status(0.5).chosenOnScreenIn, null); // it is playing
  levels.reset();
  assert.deepEqual(levels.status(0), { manualLevel: 2, playingLevel: null, chosenLevel: null, chosenOnScreenIn: null });
});

test('daemon pace: measured from chunks, else reported; a closed daemon takes both, a new channel only the measure', () => {
  const bus = new EventBus();
  const pace = new DaemonPace(bus);
  pace.registerListeners();
  assert.deepEqual(pace.status(), { fps: null, device: null, generatorId: null, queueDepth: null });
  bus.trigger(Events.DAEMON_STATUS, { fps: 12, queueDepth: 1, device: 'cpu', generatorId: 'tiny:x' });
  assert.equal(pace.fps, 12);
  pace.sample(0, 10); // no time: nothing learnt
  assert.equal(pace.fps, 12);
  pace.sample(500, 10);
  assert.equal(pace.fps, 20);
  pace.reset();
  assert.deepEqual(pace.status(), { fps: 12, device: 'cpu', generatorId: 'tiny:x', queueDepth: 1 });
  pace.sample(1000, 30);
  bus.trigger(Events.DAEMON_CLOSED, { url: 'ws://d', code: 1006, reason: '', retryInMs: 500, everOpened: true });
  assert.deepEqual(pace.status(), { fps: null, device: null, generatorId: null, queueDepth: null });
});

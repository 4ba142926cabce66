// The seek controller: seekAction's four answers, and what a seek outside the buffer does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { SeekController, seekAction } from '../controllers/seek-controller.js';
import { Timeline } from '../controllers/timeline.js';

const manifest = { fps: 10, frames: 100, chunk_frames: 10, chunk_count: 10, live: false, prev_latent_rule: 'chunk-reset' };
const timeline = new Timeline(manifest, true);
const nothing = () => false;

test('seekAction: clamped, buffered, refused for a chained stream, else a restart at the virtual chunk', () => {
  assert.deepEqual(seekAction(manifest, timeline, 0.5, 2, nothing), { kind: 'clamp', toS: 2 });
  assert.deepEqual(seekAction(manifest, timeline, 5.5, 5.5, (t) => t < 6), { kind: 'buffered' });
  assert.deepEqual(seekAction(manifest, timeline, 25.5, 25.5, nothing), { kind: 'restart', virtual: 25 }); // pass 2, chunk 5
  const chained = { ...manifest, prev_latent_rule: 'chained' };
  assert.deepEqual(seekAction(chained, timeline, 5.5, 5.5, nothing), { kind: 'refused' });
  assert.deepEqual(seekAction(chained, timeline, 20.5, 20.5, nothing), { kind: 'restart', virtual: 20 }); // chunk 0 of pass 2
});

function setup({ clampTo = null } = {}) {
  const bus = new EventBus();
  const log = [];
  const video = Object.assign(new EventTarget(), { currentTime: 0 });
  const manifests = { manifest: null, timeline };
  const seeks = new SeekController(bus, {
    video,
    buffer: { flush: () => log.push('flush'), isBuffered: (t) => t < 3 },
    manifests,
    live: { clampSeek: (t) => clampTo ?? t, clearSkipped: () => log.push('clear skipped') },
    levels: { flushed: () => log.push('levels flushed') },
    monitor: { holdUntilBuffered: () => log.push('hold') },
  });
  seeks.registerListeners();
  bus.on(Events.SEEK_OUTSIDE_BUFFER, ({ virtual }) => log.push(`restart ${virtual}`));
  bus.on(Events.NOTICE, ({ kind }) => log.push(`notice ${kind}`));
  const seek = (timeS) => {
    video.currentTime = timeS;
    video.dispatchEvent(new Event('seeking'));
  };
  return { log, seeks, video, manifests, seek };
}

test('a seek outside the buffer flushes it, holds playback, then SEEK_OUTSIDE_BUFFER; inside, nothing', () => {
  const { log, seeks, manifests, seek } = setup();
  seek(5.5); // no manifest yet: nothing
  manifests.manifest = manifest;
  seek(2); // buffered
  seek(5.5);
  assert.deepEqual(log, ['flush', 'levels flushed', 'clear skipped', 'hold', 'restart 5']);
  seeks.destroy();
  seek(7.5);
  assert.equal(log.length, 5);
});

test('a seek out of a live window becomes a seek to its border; a chained stream says it cannot seek', () => {
  const clamped = setup({ clampTo: 4 });
  clamped.manifests.manifest = manifest;
  clamped.seek(0.5);
  assert.equal(clamped.video.currentTime, 4);
  assert.deepEqual(clamped.log, []);
  const chained = setup();
  chained.manifests.manifest = { ...manifest, prev_latent_rule: 'chained' };
  chained.seek(5.5);
  assert.deepEqual(chained.log, ['notice seek']);
});

// The manifest controller: the playing channel's manifest updates, its duration, MANIFEST_PARSED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { ManifestController, streamDuration } from '../controllers/manifest-controller.js';
import { Timeline } from '../controllers/timeline.js';

const manifest = { fps: 10, frames: 100, chunk_frames: 10, chunk_count: 10, live: false };

test('the duration: a finished ladder its length, a looped or live one endless', () => {
  assert.equal(streamDuration(manifest, new Timeline(manifest, false)), 10);
  assert.equal(streamDuration(manifest, new Timeline(manifest, true)), Infinity);
  const live = { ...manifest, live: true };
  assert.equal(streamDuration(live, new Timeline(live, false)), Infinity);
});

function setup({ loop = false } = {}) {
  const bus = new EventBus();
  const log = [];
  const video = { currentTime: 0 };
  const record = (name) => (m) => log.push(`${name} ${m.chunk_count}`);
  const controller = new ManifestController(bus, {
    video,
    buffer: { setDuration: (s) => log.push(`duration ${s}`) },
    live: { setManifest: record('live') },
    levels: { setManifest: record('levels') },
    monitor: { mark: (name) => log.push(`mark ${name}`) },
    loop,
  });
  controller.registerListeners();
  bus.on(Events.MANIFEST_PARSED, ({ manifest: m, timeline, first }) => log.push(`parsed ${m.chunk_count} ${timeline.chunkCount} ${first}`));
  return { bus, log, controller, video };
}

test('updates of the playing channel go to the live and level controllers; the first sets the duration', () => {
  const { bus, log, controller } = setup();
  controller.reset('c');
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'other', manifest });
  assert.deepEqual(log, []);
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest });
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest: { ...manifest, chunk_count: 12, frames: 120 } });
  assert.deepEqual(log, [
    'mark manifest', 'live 10', 'levels 10', 'duration 10', 'parsed 10 10 true',
    'mark manifest', 'live 12', 'levels 12', 'parsed 12 12 false',
  ]);
});

test('status: the channel, its manifest and the place on screen of a looped ladder', () => {
  const { bus, controller, video } = setup({ loop: true });
  assert.deepEqual(controller.status(), { channel: null, manifest: null, endless: false, playing: null });
  controller.reset('c');
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest });
  video.currentTime = 23.5; // pass 2, chunk 3
  assert.deepEqual(controller.status(), { channel: 'c', manifest, endless: true, playing: { pass: 2, chunk: 3 } });
  controller.destroy();
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest: { ...manifest, chunk_count: 3 } });
  assert.equal(controller.status().manifest, manifest);
});

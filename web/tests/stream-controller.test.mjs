// The stream controller's pipeline rules against recording fakes of its collaborators:
// what it asks the server for (level, prefix) and what it tells the daemon (seek, forward).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { FixedRule } from '../abr/fixed.js';
import { ThroughputEstimator } from '../abr/throughput-estimator.js';
import { StreamController, State } from '../controllers/stream-controller.js';
import { PlaybackMonitor } from '../controllers/playback-monitor.js';
import { LiveController } from '../controllers/live-controller.js';
import { LevelController } from '../controllers/level-controller.js';
import { DaemonPace } from '../controllers/daemon-pace.js';
import { ErrorController } from '../controllers/error-controller.js';
import { ManifestController } from '../controllers/manifest-controller.js';
import { DaemonSessionController } from '../controllers/daemon-session-controller.js';
import { SeekController } from '../controllers/seek-controller.js';
import { ChunkLoader } from '../controllers/chunk-loader.js';

const manifest = {
  fps: 10, width: 64, height: 64, frames: 100, chunk_frames: 10, chunk_count: 10, live: false,
  generator: { id: 'tiny:x', name: 'tiny' }, noise_seed: 88, prev_latent_weight: 0.05, prev_latent_rule: 'chunk-reset',
  levels: [0, 1].map((id) => ({
    id, name: `l${id}`, rank: 2 ** (id + 1), interval: 10, kbps: 100 * (id + 1),
    chunks: Array.from({ length: 10 }, (_, index) => ({ index, bytes: 1000 * (id + 1), psnr: null, ssim: null })),
  })),
};

/** A stream controller with the helpers the Player builds beside it, listening on `bus`. */
function streamController(bus, { video, buffer, clock, estimator, abr, quality, loop, ...deps }) {
  const monitor = new PlaybackMonitor(bus, { video, buffer, clock });
  const live = new LiveController({ video, buffer });
  const pace = new DaemonPace(bus);
  const levels = new LevelController(bus, { video, estimator, abr, pace, quality });
  const manifests = new ManifestController(bus, { video, buffer, live, levels, monitor, loop });
  const session = new DaemonSessionController(bus, { video, daemon: deps.daemon, buffer, manifests, levels, pace, monitor });
  const loader = new ChunkLoader(bus, { server: deps.server, clock });
  const stream = new StreamController(bus, { video, buffer, clock, monitor, live, levels, manifests, session, loader, ...deps });
  monitor.registerListeners();
  pace.registerListeners();
  manifests.registerListeners();
  session.registerListeners();
  new SeekController(bus, { video, buffer, manifests, live, levels, monitor }).registerListeners();
  loader.registerListeners();
  stream.registerListeners();
  new ErrorController(bus, { stream, loader, manifests, live, video }).registerListeners();
  stream.resetChannel('c');
  return { stream, monitor, live, levels, pace, session, loader };
}

class FakeVideo extends EventTarget {
  constructor() {
    super();
    Object.assign(this, { currentTime: 0, paused: true, seeking: false, duration: 10, buffered: { length: 0 } });
  }
  play() {
    this.paused = false;
    return Promise.resolve();
  }
  pause() {
    this.paused = true;
  }
}

function setup({ loop = false, rule = 'chunk-reset', live = null, daemonConnected = true } = {}) {
  const bus = new EventBus();
  const log = [];
  let buffered = 0;
  let now = 0;
  const server = {
    requestChunk: (chunk, level, prefix) => (log.push(`get ${chunk} L${level}${prefix ? ' +prefix' : ''}`), true),
    ack: () => {},
    switchChannel: () => {},
  };
  const daemon = {
    connected: daemonConnected,
    openStream: () => log.push('open'),
    seek: (chunk) => (log.push(`seek ${chunk}`), true),
    forwardChunk: (frame) => (log.push(`forward ${frame}`), true),
    retryNow: () => {},
  };
  const buffer = {
    ready: true,
    attached: true,
    attach: () => {
      log.push('attach');
      buffer.attached = true;
    },
    detach: () => {
      log.push('detach');
      buffer.attached = false;
    },
    flush: () => log.push('flush'),
    appendInit: () => Promise.resolve(),
    appendSegment: ({ chunk, level, complete, offsetS }) => {
      if (offsetS !== 0) log.push(`offset ${offsetS}`);
      if (!complete) log.push(`part of ${chunk}`);
      bus.trigger(Events.BUFFER_APPENDED, { chunk, level, complete });
    },
    setDuration: () => {},
    setSeekableEnd: () => {},
    endOfStream: () => log.push('end'),
    bufferAheadS: () => buffered,
    isBuffered: (time) => bufferedAt(time),
  };
  let bufferedAt = () => false;
  const video = new FakeVideo();
  const { stream, monitor, live: liveController, levels, pace, session, loader } = streamController(bus, {
    video, server, daemon, buffer, estimator: new ThroughputEstimator(), abr: new FixedRule({ level: 0 }), clock: () => now, loop,
  });
  const loaded = (chunk, level, prefixBytes = 0, closed = false) =>
    bus.trigger(Events.CHUNK_LOADED, { chunk, level, bytes: 1000, prefixBytes, closed, seconds: 0.1, endS: 0, frame: `c${chunk}L${level}` });
  // a chunk's GOPs come back one segment each: `parts` segments of 10 / parts frames
  const generated = (chunk, level, parts = 1, only = parts) => {
    for (let part = 0; part < only; part++) {
      bus.trigger(Events.SEGMENT_GENERATED, {
        chunk, level, part, parts, frames: 10 / parts, generationMs: 100 * (part + 1) / parts, encodeMs: 1, data: new Uint8Array(1),
      });
    }
  };
  const start = async () => {
    bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest: live ?? { ...manifest, prev_latent_rule: rule } });
    bus.trigger(Events.INIT_STATE_LOADED, { channel: 'c', data: new Uint8Array(4) });
    bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) });
    await new Promise((resolve) => setImmediate(resolve));
  };
  const setBufferedAt = (predicate) => { bufferedAt = predicate; };
  const setClock = (s) => { now = s; };
  /** What Player.setManualLevel does: the level controller takes it, the stream acts on it at once. */
  const setManualLevel = (level) => {
    levels.setManualLevel(level);
    stream.tick();
  };
  return { bus, log, stream, monitor, liveController, pace, session, loader, video, setManualLevel, loaded, generated, start, setBuffered: (s) => { buffered = s; }, setBufferedAt, setClock };
}

test('in sequence: chunk 0 without prefix, no seek; the daemon gets at most two chunks', async () => {
  const { log, stream, loaded, start } = setup();
  await start();
  assert.deepEqual(log, ['open', 'get 0 L0']);
  loaded(0, 0);
  loaded(1, 0);
  assert.deepEqual(log.slice(2), ['forward c0L0', 'get 1 L0', 'forward c1L0']);
  assert.equal(stream.state, State.GENERATING); // two chunks at the daemon: wait
});

test('a level switch asks for the switch prefix; segments go to the buffer and startup starts playback', async () => {
  const { log, video, loaded, generated, start, setManualLevel } = setup();
  await start();
  loaded(0, 0);
  generated(0, 0);
  assert.equal(video.paused, false);
  setManualLevel(1); // chunk 1 is already requested at level 0: the switch starts at chunk 2
  assert.equal(log.at(-1), 'get 1 L0');
  loaded(1, 0);
  assert.equal(log.at(-1), 'get 2 L1 +prefix');
  generated(1, 0);
  loaded(2, 1, 500);
  assert.equal(log.at(-1), 'get 3 L1'); // same level again: no prefix
});

test('a daemon error resyncs: refetch with the prefix and announce a seek', async () => {
  const { bus, log, loaded, generated, start } = setup();
  await start();
  loaded(0, 0);
  generated(0, 0);
  loaded(1, 0);
  bus.trigger(Events.DAEMON_ERROR, { code: 'generation_failed', message: 'boom' });
  assert.equal(log.at(-1), 'get 1 L0 +prefix'); // chunk 1 never reached the buffer
  loaded(1, 0, 500);
  assert.deepEqual(log.slice(-3), ['seek 1', 'forward c1L0', 'get 2 L0']);
});

test('a stale answer (from before a seek) is dropped; the seek target is fetched with its prefix', async () => {
  const { log, video, loaded, start } = setup();
  await start();
  video.currentTime = 5.5;
  video.dispatchEvent(new Event('seeking'));
  assert.deepEqual(log.slice(-2), ['flush', 'get 5 L0 +prefix']);
  loaded(0, 0); // the answer to the request sent before the seek
  assert.ok(!log.includes('forward c0L0'));
  loaded(5, 0, 500);
  assert.deepEqual(log.slice(-3), ['seek 5', 'forward c5L0', 'get 6 L0']);
});

test('generator mismatch blocks fetching until retry or channel switch', async () => {
  const { bus, log, stream, start } = setup();
  await start();
  bus.trigger(Events.DAEMON_ERROR, { code: 'generator_mismatch', message: 'other weights' });
  stream.tick();
  assert.equal(stream.state, State.BLOCKED);
  assert.deepEqual(stream.blockedReason, { kind: 'generator_mismatch', message: 'other weights' });
  assert.equal(log.filter((l) => l.startsWith('get')).length, 1);
});

test('a blocked stream with nothing buffered lets go of its MediaSource; retry takes a fresh one', async () => {
  const { bus, log, stream, session, start } = setup();
  await start();
  bus.trigger(Events.DAEMON_ERROR, { code: 'generator_mismatch', message: 'other weights' });
  stream.tick();
  assert.equal(log.at(-1), 'detach'); // no MediaSource: no loading spinner over video that cannot come
  assert.equal(session.ready, false);
  stream.tick();
  assert.equal(log.filter((l) => l === 'detach').length, 1);
  stream.retry();
  assert.equal(stream.blockedReason, null);
  bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) }); // the retried daemon answers
  assert.equal(log.at(-1), 'attach');
});

test('while no daemon answers, nothing buffered means no MediaSource either', async () => {
  const { bus, log, stream } = setup({ daemonConnected: false });
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest });
  assert.deepEqual(log, ['detach']);
  stream.tick();
  assert.deepEqual(log, ['detach']);
  assert.equal(stream.state, State.WAITING_DAEMON);
});

test('a blocked stream whose buffer ran out is paused, and plays on once data is in after a retry', async () => {
  const { bus, log, stream, video, loaded, generated, start, setBuffered } = setup();
  await start();
  loaded(0, 0);
  generated(0, 0); // in the buffer, playing
  assert.equal(video.paused, false);
  bus.trigger(Events.DAEMON_ERROR, { code: 'generator_mismatch', message: 'other weights' });
  setBuffered(0.5);
  stream.tick();
  assert.equal(video.paused, false); // what is buffered plays out
  setBuffered(0);
  stream.tick();
  assert.equal(video.paused, true);
  assert.equal(log.includes('detach'), false); // the buffered frames stay on screen
  stream.retry();
  setBuffered(2);
  stream.tick();
  assert.equal(video.paused, false);
});

test('a daemon that goes away takes its refusal with it; the next one is asked afresh', async () => {
  const { bus, log, stream, start } = setup();
  await start();
  bus.trigger(Events.DAEMON_ERROR, { code: 'generator_mismatch', message: 'other weights' });
  stream.tick();
  bus.trigger(Events.DAEMON_CLOSED, { url: 'ws://d', code: 1006, reason: '', retryInMs: 500, everOpened: true });
  assert.equal(stream.blockedReason, null);
  stream.tick();
  assert.equal(stream.state, State.WAITING_DAEMON);
  bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) }); // the next daemon plays it
  assert.equal(log.at(-1), 'attach');
});

test('startup time counts from a retry of a blocked stream, or from a daemon that came after none answered', async () => {
  const { bus, stream, monitor, video, loaded, generated, start, setClock } = setup();
  video.requestVideoFrameCallback = (callback) => { video.frameCallback = callback; };
  await start();
  bus.trigger(Events.DAEMON_ERROR, { code: 'generator_mismatch', message: 'other weights' });
  setClock(17.9); // blocked this long, then the viewer fixed the daemon
  stream.retry();
  setClock(18.4);
  bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) });
  await new Promise((resolve) => setImmediate(resolve));
  loaded(0, 0);
  generated(0, 0);
  setClock(19.0);
  video.frameCallback();
  assert.equal(monitor.status().startupS.toFixed(3), '1.100');

  stream.resetChannel('d');
  bus.trigger(Events.DAEMON_CLOSED, { url: 'ws://d', code: 1006, reason: '', retryInMs: 500, everOpened: false });
  setClock(40); // the viewer starts a daemon 21 s later
  bus.trigger(Events.DAEMON_CONNECTED, { url: 'ws://d' });
  assert.equal(monitor.status().sinceStartS, 0); // the clock restarted at 40 s
});

test('the end of a finished ladder ends the MediaSource once', async () => {
  const { log, stream, loaded, generated, start } = setup();
  await start();
  for (let chunk = 0; chunk < 10; chunk++) {
    loaded(chunk, 0);
    generated(chunk, 0);
  }
  stream.tick();
  assert.equal(stream.state, State.ENDED);
  assert.equal(log.filter((l) => l === 'end').length, 1);
});

test('a looped ladder goes on: pass 2 starts with chunk 0 (seek, no prefix) 10 s later on the clock', async () => {
  const { log, stream, loaded, generated, start } = setup({ loop: true });
  await start();
  for (let chunk = 0; chunk < 10; chunk++) {
    loaded(chunk, 0);
    generated(chunk, 0);
  }
  assert.equal(log.at(-1), 'get 0 L0');
  loaded(0, 0);
  assert.deepEqual(log.slice(-3), ['seek 0', 'forward c0L0', 'get 1 L0']);
  generated(0, 0);
  assert.equal(log.at(-1), 'offset 10');
  assert.equal(stream.appendedThrough, 10);
  assert.notEqual(stream.state, State.ENDED);
});

test('a refused get is not repeated at once; not_available is retried after 0.5 s', async () => {
  const { bus, log, loader, start } = setup();
  await start();
  bus.trigger(Events.SERVER_ERROR, { code: 'internal', message: 'chunk file vanished', chunk: 0, level: 0 });
  assert.equal(log.filter((l) => l.startsWith('get')).length, 1);
  assert.equal(loader.retryAtS, 2);
  bus.trigger(Events.SERVER_ERROR, { code: 'not_available', message: 'not yet', chunk: 0, level: 0 });
  assert.equal(loader.retryAtS, 0.5);
});

test('a legacy chained stream cannot resync mid-stream: it stops and says why', async () => {
  const { bus, stream, loaded, generated, start } = setup({ rule: 'chained' });
  const fatal = [];
  bus.on(Events.ERROR, (e) => fatal.push(e.fatal));
  await start();
  loaded(0, 0);
  generated(0, 0);
  bus.trigger(Events.DAEMON_ERROR, { code: 'generation_failed', message: 'boom' });
  assert.equal(stream.state, State.BLOCKED);
  assert.equal(stream.blockedReason.kind, 'chained');
  assert.deepEqual(fatal, [false, true]);
});

/** A live manifest: window [start, count), 2 levels, `gaps` = {level: [chunk, ...]}. */
function liveManifest({ start = 0, count = 6, gaps = {} } = {}) {
  return {
    ...manifest, frames: count * 10, chunk_count: count, window_start: start, live: true,
    levels: manifest.levels.map((level) => ({
      ...level,
      chunks: Array.from({ length: count - start }, (_, i) => {
        const index = start + i;
        const gap = (gaps[level.id] ?? []).includes(index);
        return gap ? { index, bytes: 0, keyframes: 0, psnr: null, ssim: null, gap: true } : { index, bytes: 1000, psnr: null, ssim: null };
      }),
    })),
  };
}

test('live: a viewer joins three chunks behind the edge, and never before the window', async () => {
  const near = setup({ live: liveManifest({ start: 3, count: 10 }) });
  await near.start();
  assert.equal(near.log.at(-1), 'get 7 L0 +prefix');
  near.loaded(7, 0, 500);
  near.generated(7, 0);
  assert.equal(near.video.currentTime, 7); // the playhead moves to the first appended chunk
  const young = setup({ live: liveManifest({ start: 3, count: 4 }) });
  await young.start();
  assert.equal(young.log.at(-1), 'get 3 L0 +prefix');
  assert.equal(young.liveController.status().behindLiveS, 4); // playhead at 0 s, edge at 4 chunks x 1 s
});

test('live: a gap of the chosen level falls back to another level; a chunk no level has is skipped', async () => {
  const { bus, log, liveController, loader, loaded, start, setManualLevel } = setup({ live: liveManifest({ start: 0, count: 6, gaps: { 0: [3, 4], 1: [4] } }) });
  setManualLevel(0);
  await start(); // joins at chunk 3: level 0 has a gap there, level 1 has it
  assert.equal(log.at(-1), 'get 3 L1 +prefix');
  loaded(3, 1, 500);
  assert.equal(log.at(-1), 'get 5 L0 +prefix'); // chunk 4 is a gap in every level: skipped
  assert.ok(liveController.skipped.has(4));
  loaded(5, 0, 500);
  assert.ok(log.includes('forward c3L1'));
  assert.deepEqual(log.slice(-2), ['seek 5', 'forward c5L0']);
  bus.trigger(Events.SERVER_ERROR, { code: 'gap', message: 'gap', chunk: 5, level: 0 });
  assert.equal(loader.retryAtS, 0.5); // retried (after the manifest that explains it)
});

test('live: the playhead jumps over a skipped gap once what follows is buffered', async () => {
  const { stream, video, loaded, generated, start, setBufferedAt } = setup({ live: liveManifest({ count: 6, gaps: { 0: [4], 1: [4] } }) });
  await start();
  loaded(3, 0, 500);
  generated(3, 0);
  loaded(5, 0, 500);
  generated(5, 0);
  assert.equal(stream.appendedThrough, 5); // the skipped chunk counts as done
  setBufferedAt((time) => time >= 5);
  video.currentTime = 3.9; // 0.1 s before the gap
  stream.tick();
  assert.equal(video.currentTime, 5);
});

test('live: seeks are clamped to the window; a viewer behind the window jumps to the edge', async () => {
  const { bus, log, stream, loader, video, start } = setup({ live: liveManifest({ start: 2, count: 8 }) });
  await start();
  video.currentTime = 0.5; // before the window
  video.dispatchEvent(new Event('seeking'));
  assert.equal(video.currentTime, 2);
  video.dispatchEvent(new Event('seeking'));
  assert.equal(log.at(-1), 'get 2 L0 +prefix');
  bus.trigger(Events.SERVER_ERROR, { code: 'outside_window', message: 'left', chunk: 2, level: 0 });
  assert.equal(video.currentTime, 5); // the live start: three chunks behind the edge
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest: liveManifest({ start: 7, count: 12 }) });
  loader.forget();
  stream.fetchChunk = 6; // slow: the window moved past what it wanted next
  stream.tick();
  assert.equal(video.currentTime, 9);
});

test('a closed chunk answers a request for the prefix without one (it holds its own keyframe)', async () => {
  const { log, loaded, start, video } = setup({ live: liveManifest({ count: 6 }) });
  await start();
  assert.equal(log.at(-1), 'get 3 L0 +prefix');
  loaded(3, 0, 0); // an open chunk without the prefix: a stale answer, dropped
  assert.equal(log.at(-1), 'get 3 L0 +prefix');
  loaded(3, 0, 0, true);
  assert.deepEqual(log.slice(-3), ['seek 3', 'forward c3L0', 'get 4 L0']);
  assert.equal(video.currentTime, 0);
});

test('a chunk comes back GOP by GOP: the first GOP starts playback, the chunk counts as in once its last GOP is', async () => {
  const { bus, log, stream, pace, session, video, loaded, generated, start } = setup();
  await start();
  loaded(0, 0);
  loaded(1, 0);
  generated(0, 0, 2, 1); // the first of chunk 0's two GOPs
  assert.equal(video.paused, false); // playback starts on one GOP
  assert.equal(stream.appendedThrough, -1);
  assert.equal(session.queue.length, 2);
  assert.equal(stream.abrContext().bufferS, 1.5); // half of chunk 0 and all of chunk 1 still at the daemon
  bus.trigger(Events.SEGMENT_GENERATED, { chunk: 0, level: 0, part: 1, parts: 2, frames: 5, generationMs: 50, encodeMs: 1, data: new Uint8Array(1) });
  assert.equal(stream.appendedThrough, 0);
  assert.equal(pace.fps, 200); // 10 frames in the last part's 50 ms
  assert.equal(log.at(-1), 'get 2 L0'); // a place at the daemon is free again
  assert.deepEqual(log.filter((l) => l.startsWith('part')), ['part of 0']);
});

test('a daemon error after some GOPs of a chunk refetches that chunk', async () => {
  const { bus, log, stream, loaded, generated, start } = setup();
  await start();
  loaded(0, 0);
  generated(0, 0);
  loaded(1, 0);
  generated(1, 0, 4, 2); // two of four GOPs, then the encoder fails
  bus.trigger(Events.DAEMON_ERROR, { code: 'generation_failed', message: 'encoding failed' });
  assert.equal(stream.appendedThrough, 0);
  assert.equal(log.at(-1), 'get 1 L0 +prefix');
});

test('the ABR sees the quality measure the page asked for (?quality=vmaf)', async () => {
  const bus = new EventBus();
  const seen = [];
  const rule = { chooseLevel: (ctx) => (seen.push(ctx), 0), reset: () => {}, destroy: () => {} };
  const vmafManifest = {
    ...manifest,
    levels: manifest.levels.map((level) => ({
      ...level,
      chunks: level.chunks.map((c) => ({ ...c, ssim: 0.9, psnr: 30, vmaf: 60 + 10 * level.id })),
    })),
  };
  streamController(bus, {
    video: new FakeVideo(),
    server: { requestChunk: () => true, ack: () => {}, switchChannel: () => {} },
    daemon: { connected: true, openStream: () => {}, seek: () => true, forwardChunk: () => true, retryNow: () => {} },
    buffer: { ready: true, attached: true, attach: () => {}, appendInit: () => Promise.resolve(), setDuration: () => {}, setSeekableEnd: () => {}, bufferAheadS: () => 0, isBuffered: () => false },
    estimator: new ThroughputEstimator(),
    abr: rule,
    clock: () => 0,
    quality: 'vmaf',
  });
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'c', manifest: vmafManifest });
  bus.trigger(Events.INIT_STATE_LOADED, { channel: 'c', data: new Uint8Array(4) });
  bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen[0].upcoming[0].map((o) => o.quality), [60, 70]);
});

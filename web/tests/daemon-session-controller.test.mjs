// The daemon session controller: `open` once per channel, DAEMON_READY or DAEMON_INIT_FAILED after
// an init segment, segments into the buffer at their place, a closed daemon's session gone, and
// the MediaSource let go of while nothing can come.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { DaemonSessionController } from '../controllers/daemon-session-controller.js';
import { DaemonPace } from '../controllers/daemon-pace.js';
import { Timeline } from '../controllers/timeline.js';

const manifest = { fps: 10, frames: 100, chunk_frames: 10, chunk_count: 10, live: false };

function setup({ initFails = false, connected = true, anyBuffered = false } = {}) {
  const bus = new EventBus();
  const log = [];
  const video = { paused: false, pause: () => log.push('pause') };
  const daemon = {
    connected,
    openStream: (m, data) => log.push(`open ${data.length}`),
    seek: (chunk) => (log.push(`seek ${chunk}`), true),
    forwardChunk: (frame) => (log.push(`forward ${frame}`), true),
  };
  const buffer = {
    ready: true,
    attached: true,
    attach: () => { buffer.attached = true; log.push('attach'); },
    detach: () => { buffer.attached = false; log.push('detach'); },
    appendInit: () => (initFails ? Promise.reject(new Error('bad codec')) : Promise.resolve()),
    appendSegment: ({ chunk, complete, offsetS }) => log.push(`append ${chunk}${complete ? '' : ' part'} +${offsetS}`),
    bufferAheadS: () => 0,
  };
  const manifests = { channel: 'c', manifest, timeline: new Timeline(manifest, true) };
  const pace = new DaemonPace(bus);
  const monitor = { mark: () => {}, holdUntilBuffered: () => log.push('hold') };
  const session = new DaemonSessionController(bus, { video, daemon, buffer, manifests, levels: { anyBuffered }, pace, monitor });
  session.registerListeners();
  for (const event of [Events.DAEMON_READY, Events.DAEMON_INIT_FAILED]) bus.on(event, (p) => log.push(`${event} ${p.message ?? ''}`.trim()));
  const init = async () => {
    bus.trigger(Events.DAEMON_INIT, { mime: 'video/mp4', data: new Uint8Array(1) });
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { bus, log, session, pace, buffer, init };
}

test('the init state opens the stream once per channel; reopen sends it again', () => {
  const { bus, log, session } = setup();
  bus.trigger(Events.INIT_STATE_LOADED, { channel: 'other', data: new Uint8Array(4) });
  bus.trigger(Events.INIT_STATE_LOADED, { channel: 'c', data: new Uint8Array(4) });
  bus.trigger(Events.INIT_STATE_LOADED, { channel: 'c', data: new Uint8Array(5) }); // a server reconnect
  session.reopen();
  assert.deepEqual(log, ['open 4', 'open 4']);
  session.reset();
  session.reopen(); // no init state for the new channel yet
  assert.equal(log.length, 2);
});

test('a ready session forwards chunks; segments go into the buffer at their pass; the last GOP samples the pace', async () => {
  const { bus, log, session, pace, init } = setup();
  assert.equal(session.forward({ virtual: 0, chunk: 0, level: 0 }, 'c0'), false); // no session yet
  await init();
  assert.equal(session.ready, true);
  assert.equal(session.forward({ virtual: 13, chunk: 3, level: 0 }, 'c3'), true);
  assert.deepEqual(session.status(), { ready: true, chunksAtDaemon: 1 });
  const segment = { chunk: 3, level: 0, parts: 2, frames: 5, encodeMs: 1, data: new Uint8Array(1) };
  bus.trigger(Events.SEGMENT_GENERATED, { ...segment, part: 0, generationMs: 40 });
  bus.trigger(Events.SEGMENT_GENERATED, { ...segment, part: 1, generationMs: 100 });
  bus.trigger(Events.SEGMENT_GENERATED, { ...segment, part: 1, generationMs: 100 }); // stale: the chunk is back
  assert.deepEqual(log, ['daemonReady', 'seek 3', 'forward c3', 'append 13 part +10', 'append 13 +10']);
  assert.equal(pace.fps, 100); // 10 frames in 100 ms
  bus.trigger(Events.DAEMON_CLOSED, {});
  assert.deepEqual(session.status(), { ready: false, chunksAtDaemon: 0 });
});

test('an init segment the SourceBuffer refuses is DAEMON_INIT_FAILED; a detached buffer is attached first', async () => {
  const { log, session, buffer, init } = setup({ initFails: true });
  buffer.attached = false;
  await init();
  assert.deepEqual(log, ['attach', 'daemonInitFailed bad codec']);
  assert.equal(session.ready, false);
});

test('while nothing can come: nothing buffered lets go of the MediaSource once; blocked and run out holds playback', async () => {
  const away = setup({ connected: false });
  await away.init();
  away.session.holdWhileNothingComes(false);
  away.session.holdWhileNothingComes(false);
  assert.deepEqual(away.log, ['daemonReady', 'detach']);
  assert.equal(away.session.ready, false);
  const blocked = setup({ anyBuffered: true });
  blocked.session.holdWhileNothingComes(false); // a daemon answers, nothing blocked: nothing to do
  blocked.session.holdWhileNothingComes(true);
  assert.deepEqual(blocked.log, ['hold']);
});

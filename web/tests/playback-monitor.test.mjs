// The playback monitor: stall accounting on a passed-in clock, the starving rule, startup timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { PlaybackMonitor, StallCounter, isStarving } from '../controllers/playback-monitor.js';

test('stall accounting: count, total seconds, a stall still going on', () => {
  const stalls = new StallCounter();
  assert.equal(stalls.update(false, 1), null);
  assert.equal(stalls.update(true, 2), 'started');
  assert.equal(stalls.update(true, 2.5), null); // the same stall
  assert.equal(stalls.stalled, true);
  assert.equal(stalls.secondsAt(3), 1);
  assert.equal(stalls.update(false, 3.5), 'ended');
  assert.equal(stalls.update(true, 10), 'started');
  assert.equal(stalls.count, 2);
  assert.equal(stalls.secondsAt(10.25), 1.75);
  assert.equal(stalls.update(false, 11), 'ended');
  assert.equal(stalls.secondsAt(20), 2.5);
  assert.equal(stalls.stalled, false);
});

test('starving: playing with less than 0.1 s (or 1.5 frames) buffered; not paused, seeking or at the end', () => {
  const playing = { paused: false, seeking: false, currentTime: 5, duration: 10, ended: false, fps: 30 };
  assert.equal(isStarving({ ...playing, bufferS: 0.09 }), true);
  assert.equal(isStarving({ ...playing, bufferS: 0.1 }), false);
  assert.equal(isStarving({ ...playing, fps: 5, bufferS: 0.25 }), true); // one frame of 0.2 s is no buffer
  assert.equal(isStarving({ ...playing, paused: true, bufferS: 0 }), false);
  assert.equal(isStarving({ ...playing, seeking: true, bufferS: 0 }), false);
  assert.equal(isStarving({ ...playing, ended: true, currentTime: 9.95, bufferS: 0 }), false);
  assert.equal(isStarving({ ...playing, ended: true, currentTime: 9, bufferS: 0 }), true);
});

function setup() {
  const bus = new EventBus();
  const events = [];
  for (const event of [Events.STALL_STARTED, Events.STALL_ENDED, Events.PLAYBACK_STARTED]) {
    bus.on(event, (payload) => events.push([event, payload]));
  }
  let now = 0;
  let bufferS = 0;
  const video = Object.assign(new EventTarget(), {
    currentTime: 0, paused: true, seeking: false, duration: 10,
    play() { this.paused = false; return Promise.resolve(); },
    pause() { this.paused = true; },
    requestVideoFrameCallback(callback) { this.frameCallback = callback; },
  });
  const buffer = { bufferAheadS: () => bufferS, isBuffered: () => bufferS > 0 };
  const monitor = new PlaybackMonitor(bus, { video, buffer, clock: () => now });
  monitor.registerListeners();
  return { bus, events, video, monitor, setClock: (s) => { now = s; }, setBuffered: (s) => { bufferS = s; } };
}

test('startup: first frame minus the channel start; stalls count only after it', () => {
  const { events, video, monitor, setClock, setBuffered } = setup();
  setClock(0.5);
  monitor.mark('manifest');
  monitor.poll(0.5, { ended: false, fps: 10, blocked: false }); // nothing started: no stall
  setBuffered(2);
  monitor.startPlayback(7);
  assert.equal(video.currentTime, 0); // buffered where it is: the playhead stays
  setClock(1.25);
  video.frameCallback();
  assert.deepEqual(events, [[Events.PLAYBACK_STARTED, { startupS: 1.25 }]]);
  setBuffered(0);
  monitor.poll(2, { ended: false, fps: 10, blocked: false });
  monitor.poll(2.5, { ended: false, fps: 10, blocked: false });
  setBuffered(1);
  monitor.poll(3, { ended: false, fps: 10, blocked: false });
  assert.deepEqual(events.slice(1), [[Events.STALL_STARTED, { atS: 2 }], [Events.STALL_ENDED, { atS: 3 }]]);
  assert.deepEqual(monitor.status(4), {
    startupS: 1.25, startupMarks: { manifest: 0.5, frame: 1.25 }, sinceStartS: 4, stalls: 1, stallS: 1,
  });
});

test('startup counts from a daemon that connected after none answered, not from the page', () => {
  const { bus, monitor, setClock } = setup();
  monitor.mark('manifest');
  bus.trigger(Events.DAEMON_CLOSED, { url: 'ws://d', code: 1006, reason: '', retryInMs: 500, everOpened: false });
  setClock(30);
  bus.trigger(Events.DAEMON_CONNECTED, { url: 'ws://d' });
  assert.deepEqual(monitor.status(31), { startupS: null, startupMarks: {}, sinceStartS: 1, stalls: 0, stallS: 0 });
});

test('held playback resumes once 1 s is buffered (or what is left of the stream), not while blocked', () => {
  const { video, monitor, setBuffered } = setup();
  video.paused = false;
  monitor.holdUntilBuffered();
  assert.equal(video.paused, true);
  setBuffered(0.5);
  monitor.poll(1, { ended: false, fps: 10, blocked: false });
  assert.equal(video.paused, true);
  setBuffered(1);
  monitor.poll(2, { ended: false, fps: 10, blocked: true });
  assert.equal(video.paused, true);
  monitor.poll(3, { ended: false, fps: 10, blocked: false });
  assert.equal(video.paused, false);
  video.currentTime = 9.5; // half a second left: that is enough
  monitor.holdUntilBuffered();
  setBuffered(0.4);
  monitor.poll(4, { ended: false, fps: 10, blocked: false });
  assert.equal(video.paused, false);
});

// BufferController against fake MediaSource/SourceBuffer/video: init, segments, trimming, quota.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { BufferController, QUOTA_RETRY_MS } from '../controllers/buffer-controller.js';

class Ranges {
  constructor(list) {
    this.list = list;
  }
  get length() {
    return this.list.length;
  }
  start(i) {
    return this.list[i][0];
  }
  end(i) {
    return this.list[i][1];
  }
}

class FakeSourceBuffer extends EventTarget {
  constructor(owner) {
    super();
    Object.assign(this, { owner, updating: false, mode: 'sequence', timestampOffset: 0, log: [], quotaFailures: 0 });
  }
  get buffered() {
    return new Ranges(this.owner.ranges);
  }
  appendBuffer(data) {
    if (this.quotaFailures > 0) {
      this.quotaFailures -= 1;
      const error = new Error('The SourceBuffer is full');
      error.name = 'QuotaExceededError';
      throw error;
    }
    this.log.push(`append ${data.label} @${this.timestampOffset}`);
    // MSE: an init segment without a duration makes the duration +Infinity
    if (Number.isNaN(this.owner.duration)) this.owner.duration = Infinity;
    this.#async();
  }
  remove(start, end) {
    this.log.push(`remove ${start}-${end}`);
    this.#async();
  }
  #async() {
    this.updating = true;
    queueMicrotask(() => {
      this.updating = false;
      this.dispatchEvent(new Event('updateend'));
    });
  }
}

class FakeMediaSource extends EventTarget {
  static isTypeSupported = (mime) => mime.startsWith('video/mp4');
  constructor() {
    super();
    this.readyState = 'closed';
    this.duration = NaN;
    this.ranges = [];
    FakeMediaSource.last = this;
  }
  addSourceBuffer() {
    this.sourceBuffer = new FakeSourceBuffer(this);
    return this.sourceBuffer;
  }
  open() {
    this.readyState = 'open';
    this.dispatchEvent(new Event('sourceopen'));
  }
}

globalThis.MediaSource = FakeMediaSource;
URL.createObjectURL = () => 'blob:fake';
URL.revokeObjectURL = () => {};

function setup() {
  const bus = new EventBus();
  const events = [];
  bus.on(Events.BUFFER_APPENDED, (p) => events.push(`appended ${p.chunk}`));
  bus.on(Events.BUFFER_FULL, (p) => events.push(`full ${p.maxBufferS.toFixed(2)}`));
  bus.on(Events.ERROR, (p) => events.push(`error ${p.message}`));
  const video = { currentTime: 0, src: '', removeAttribute() {}, load() {}, get buffered() { return new Ranges(FakeMediaSource.last.ranges); } };
  const buffer = new BufferController(bus, { video });
  buffer.attach();
  return { buffer, video, events, mediaSource: FakeMediaSource.last };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test('init once, segments in order with their loop offset, back buffer trimmed beyond 10 s', async () => {
  const { buffer, video, events, mediaSource } = setup();
  const ready = buffer.appendInit('video/mp4; codecs="avc1.42C01E"', { label: 'init' });
  mediaSource.open();
  await ready;
  assert.equal(mediaSource.sourceBuffer.mode, 'segments');
  buffer.appendSegment({ chunk: 0, level: 0, data: { label: 's0' } });
  buffer.appendSegment({ chunk: 10, level: 1, data: { label: 's10' }, offsetS: 10 });
  await settle();
  assert.deepEqual(mediaSource.sourceBuffer.log, ['append init @0', 'append s0 @0', 'append s10 @10']);
  assert.deepEqual(events, ['appended 0', 'appended 10']);
  mediaSource.ranges = [[0, 20]];
  video.currentTime = 12.5;
  assert.equal(buffer.bufferAheadS(), 7.5);
  buffer.trimBackBuffer(10);
  await settle();
  assert.equal(mediaSource.sourceBuffer.log.at(-1), 'remove 0-2.5');
});

test('QuotaExceededError: cap the buffer at 80% of what is held, trim behind the playhead, retry', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  const { buffer, video, events, mediaSource } = setup();
  const ready = buffer.appendInit('video/mp4', { label: 'init' });
  mediaSource.open();
  await ready;
  await Promise.resolve();
  mediaSource.ranges = [[0, 30]];
  video.currentTime = 20;
  mediaSource.sourceBuffer.quotaFailures = 1;
  buffer.appendSegment({ chunk: 30, level: 0, data: { label: 's30' } });
  assert.deepEqual(events, ['full 8.00']); // 0.8 x the 10 s ahead
  mock.timers.tick(QUOTA_RETRY_MS);
  mock.timers.reset();
  await settle();
  await settle();
  const log = mediaSource.sourceBuffer.log;
  // freed first (1 s kept behind the playhead), then the retried append, then routine trimming
  assert.deepEqual(log.slice(1), ['remove 0-19', 'append s30 @0', 'remove 0-10']);
  assert.deepEqual(events, ['full 8.00', 'appended 30']);
});

test('a format the browser cannot play is refused with the MIME named', async () => {
  const { buffer, mediaSource } = setup();
  const ready = buffer.appendInit('video/webm; codecs="vp8"', { label: 'init' });
  mediaSource.open();
  await assert.rejects(ready, /cannot play the daemon's video format video\/webm/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferOperationQueue } from '../controllers/buffer-operation-queue.js';
import { EventBus, Events } from '../events.js';

/** A SourceBuffer stand-in: appendBuffer/remove set `updating` until finish() fires updateend. */
class FakeSourceBuffer extends EventTarget {
  constructor() {
    super();
    this.updating = false;
    this.log = [];
  }
  appendBuffer(data) {
    if (this.updating) throw new Error('InvalidStateError: updating');
    if (data === 'too-big') {
      const error = new Error('quota');
      error.name = 'QuotaExceededError';
      throw error;
    }
    this.updating = true;
    this.log.push(`append ${data}`);
  }
  finish({ fail = false } = {}) {
    if (fail) this.dispatchEvent(new Event('error'));
    this.updating = false;
    this.dispatchEvent(new Event('updateend'));
  }
}

test('operations run one at a time, each after the previous updateend', () => {
  const sb = new FakeSourceBuffer();
  const queue = new BufferOperationQueue(sb);
  const done = [];
  for (const name of ['a', 'b', 'c']) {
    queue.append({ label: name, execute: () => sb.appendBuffer(name), onComplete: () => done.push(name) });
  }
  assert.deepEqual(sb.log, ['append a']);
  assert.equal(queue.length, 3);
  sb.finish();
  assert.deepEqual(sb.log, ['append a', 'append b']);
  sb.finish();
  sb.finish();
  assert.deepEqual(done, ['a', 'b', 'c']);
  assert.equal(queue.length, 0);
});

test('synchronous operations complete at once; a throw goes to onError and the queue moves on', () => {
  const sb = new FakeSourceBuffer();
  const queue = new BufferOperationQueue(sb);
  const events = [];
  queue.append({ label: 'duration', execute: () => events.push('duration set'), onComplete: () => events.push('duration done') });
  queue.append({ label: 'big', execute: () => sb.appendBuffer('too-big'), onError: (e) => events.push(`error ${e.name}`) });
  queue.append({ label: 'x', execute: () => sb.appendBuffer('x'), onComplete: () => events.push('x done') });
  assert.deepEqual(events, ['duration set', 'duration done', 'error QuotaExceededError']);
  sb.finish();
  assert.deepEqual(events.at(-1), 'x done');
});

test('a decode error (error then updateend) fails only that operation', () => {
  const sb = new FakeSourceBuffer();
  const queue = new BufferOperationQueue(sb);
  const events = [];
  queue.append({ label: 'bad', execute: () => sb.appendBuffer('bad'), onComplete: () => events.push('bad done'), onError: (e) => events.push(e.message) });
  queue.append({ label: 'good', execute: () => sb.appendBuffer('good'), onComplete: () => events.push('good done'), onError: () => events.push('good failed') });
  sb.finish({ fail: true });
  assert.match(events[0], /SourceBuffer error during 'bad'/);
  assert.deepEqual(sb.log, ['append bad', 'append good']);
  sb.finish();
  assert.deepEqual(events.slice(1), ['good done']);
});

test('prepend jumps the waiting line; clear drops waiting operations', () => {
  const sb = new FakeSourceBuffer();
  const queue = new BufferOperationQueue(sb);
  queue.append({ label: '1', execute: () => sb.appendBuffer('1') });
  queue.append({ label: '2', execute: () => sb.appendBuffer('2') });
  queue.prepend({ label: 'retry', execute: () => sb.appendBuffer('retry') });
  sb.finish();
  assert.deepEqual(sb.log, ['append 1', 'append retry']);
  queue.clear();
  sb.finish();
  assert.deepEqual(sb.log, ['append 1', 'append retry']);
  queue.destroy();
});

test('event bus: a throwing listener becomes an ERROR event, others still run', () => {
  const bus = new EventBus();
  const seen = [];
  bus.on(Events.NOTICE, () => { throw new Error('boom'); });
  bus.on(Events.NOTICE, (p) => seen.push(p.kind));
  bus.on(Events.ERROR, (e) => seen.push(`${e.source}: ${e.message}`));
  bus.trigger(Events.NOTICE, { kind: 'k', text: 't', level: 'info' });
  assert.deepEqual(seen, ['listener of notice: boom', 'k']);
  assert.throws(() => bus.on('nope', () => {}), /unknown event 'nope'/);
});

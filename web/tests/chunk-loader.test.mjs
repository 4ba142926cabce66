// The chunk loader: which answers count, one `get` in flight, refusals, retry times, closed links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { ChunkLoader, answers } from '../controllers/chunk-loader.js';

test('answers: the chunk and level asked for, with the prefix when one was asked for (a closed chunk has none)', () => {
  const plain = { chunk: 3, level: 1, prefix: false };
  const prefixed = { ...plain, prefix: true };
  assert.equal(answers(null, { chunk: 3, level: 1, prefixBytes: 0 }), false);
  assert.equal(answers(plain, { chunk: 3, level: 1, prefixBytes: 0 }), true);
  assert.equal(answers(plain, { chunk: 4, level: 1, prefixBytes: 0 }), false);
  assert.equal(answers(plain, { chunk: 3, level: 0, prefixBytes: 0 }), false);
  assert.equal(answers(prefixed, { chunk: 3, level: 1, prefixBytes: 0 }), false); // from before the switch
  assert.equal(answers(prefixed, { chunk: 3, level: 1, prefixBytes: 500 }), true);
  assert.equal(answers(prefixed, { chunk: 3, level: 1, prefixBytes: 0, closed: true }), true);
});

function setup({ sends = true } = {}) {
  const bus = new EventBus();
  const log = [];
  let now = 10;
  const server = { requestChunk: (chunk, level, prefix) => (log.push(`get ${chunk} L${level}${prefix ? ' +prefix' : ''}`), sends) };
  const loader = new ChunkLoader(bus, { server, clock: () => now });
  loader.registerListeners();
  return { bus, log, loader, setClock: (s) => { now = s; } };
}

test('one get in flight: taken by its answer, stale answers ignored; an unsent get is not waited for', () => {
  const { log, loader } = setup();
  const request = { virtual: 13, chunk: 3, level: 1, prefix: false };
  assert.equal(loader.request(request), true);
  assert.equal(loader.waiting, true);
  assert.equal(loader.take({ chunk: 2, level: 1, prefixBytes: 0 }), null);
  assert.equal(loader.take({ chunk: 3, level: 1, prefixBytes: 0 }), request);
  assert.equal(loader.waiting, false);
  assert.deepEqual(log, ['get 3 L1']);
  const unsent = setup({ sends: false });
  assert.equal(unsent.loader.request(request), false);
  assert.equal(unsent.loader.waiting, false);
});

test('a refusal of the get in flight drops it; a retry time holds the next one back', () => {
  const { loader, setClock } = setup();
  loader.request({ virtual: 3, chunk: 3, level: 1, prefix: true });
  assert.equal(loader.dropRequest(3, 0), false); // another level's refusal
  assert.equal(loader.dropRequest(3, 1), true);
  assert.equal(loader.waiting, false);
  loader.retryAfter(2);
  assert.equal(loader.mayRequest(11.9), false);
  setClock(12);
  assert.equal(loader.mayRequest(12), true);
  loader.reset();
  assert.equal(loader.mayRequest(0), true);
});

test('a closed server or daemon connection forgets the get in flight', () => {
  for (const event of [Events.SERVER_CLOSED, Events.DAEMON_CLOSED]) {
    const { bus, loader } = setup();
    loader.request({ virtual: 0, chunk: 0, level: 0, prefix: false });
    bus.trigger(event, {});
    assert.equal(loader.waiting, false);
    loader.destroy();
    loader.request({ virtual: 0, chunk: 0, level: 0, prefix: false });
    bus.trigger(event, {});
    assert.equal(loader.waiting, true); // no longer listening
  }
});

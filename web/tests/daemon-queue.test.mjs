// The daemon queue: a seek only when the daemon expects another chunk, segments matched GOP by GOP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DaemonQueue } from '../controllers/daemon-queue.js';

function setup({ sends = true } = {}) {
  const log = [];
  const daemon = {
    seek: (chunk) => (log.push(`seek ${chunk}`), sends),
    forwardChunk: (frame) => (log.push(`forward ${frame}`), sends),
  };
  return { log, queue: new DaemonQueue(daemon) };
}

test('an unknown or other next chunk gets a seek first; in sequence none', () => {
  const { log, queue } = setup();
  assert.equal(queue.forward({ virtual: 3, chunk: 3, level: 0 }, 'c3'), true);
  assert.equal(queue.forward({ virtual: 4, chunk: 4, level: 0 }, 'c4'), true);
  queue.clear(0); // a fresh daemon session expects chunk 0
  queue.forward({ virtual: 10, chunk: 0, level: 1 }, 'c0'); // a loop's next pass
  assert.deepEqual(log, ['seek 3', 'forward c3', 'forward c4', 'forward c0']);
  assert.equal(queue.length, 1);
});

test('a failed send leaves nothing queued', () => {
  const { log, queue } = setup({ sends: false });
  assert.equal(queue.forward({ virtual: 0, chunk: 0, level: 0 }, 'c0'), false);
  assert.deepEqual(log, ['seek 0']);
  assert.equal(queue.length, 0);
});

test('segments: GOP by GOP, the last completes the chunk; stale ones and dropped chunks', () => {
  const { queue } = setup();
  for (const chunk of [0, 1, 2]) queue.forward({ virtual: chunk, chunk, level: 0 }, `c${chunk}`);
  assert.equal(queue.pendingS(1, 10), 3);
  assert.equal(queue.segment({ chunk: 5, level: 0, part: 0, parts: 2, frames: 5 }), null); // from before a resync
  const first = queue.segment({ chunk: 0, level: 0, part: 0, parts: 2, frames: 5 });
  assert.equal(first.complete, false);
  assert.equal(queue.pendingS(1, 10), 2.5);
  assert.equal(queue.segment({ chunk: 0, level: 0, part: 0, parts: 2, frames: 5 }), null); // not the next GOP
  const last = queue.segment({ chunk: 0, level: 0, part: 1, parts: 2, frames: 5 });
  assert.deepEqual([last.complete, last.entry.framesBack, queue.length], [true, 10, 2]);
  queue.segment({ chunk: 2, level: 0, part: 0, parts: 1, frames: 10 }); // the daemon dropped chunk 1
  assert.equal(queue.length, 0);
  queue.forward({ virtual: 3, chunk: 3, level: 0 }, 'c3');
  queue.drop();
  assert.equal(queue.length, 0);
  assert.equal(queue.next, 4); // what it expects next is kept until its next `init`
});

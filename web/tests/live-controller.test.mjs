// The live controller's edge and gap decisions on hand-built manifests, with a fake video and buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveController } from '../controllers/live-controller.js';
import { Timeline } from '../controllers/timeline.js';

/** 1 s chunks (10 frames at 10 fps), window [start, count), `gaps` = {level: [chunk, ...]} on 2 levels. */
function manifest({ start = 0, count = 10, live = true, gaps = {} } = {}) {
  return {
    fps: 10, chunk_frames: 10, chunk_count: count, frames: count * 10, window_start: start, live,
    levels: [0, 1].map((id) => ({
      id,
      chunks: Array.from({ length: count - start }, (_, i) => {
        const index = start + i;
        return (gaps[id] ?? []).includes(index) ? { index, bytes: 0, gap: true } : { index, bytes: 1000 };
      }),
    })),
  };
}

function setup(m, { loop = false } = {}) {
  const seekable = [];
  let bufferedFrom = Infinity;
  const video = { currentTime: 0, seeking: false };
  const buffer = { setSeekableEnd: (...args) => seekable.push(args), isBuffered: (t) => t >= bufferedFrom };
  const live = new LiveController({ video, buffer });
  live.setManifest(m, new Timeline(m, loop));
  return { live, video, seekable, setBufferedFrom: (s) => { bufferedFrom = s; } };
}

test('the live edge: join three chunks behind it inside the window; left the window; past the edge', () => {
  const { live } = setup(manifest({ start: 3, count: 10 }));
  assert.equal(live.startChunk(), 7);
  assert.equal(setup(manifest({ start: 3, count: 4 })).live.startChunk(), 3); // a young window
  assert.equal(setup(manifest({ start: 0, count: 10, live: false })).live.startChunk(), 0);
  assert.deepEqual([2, 3].map((c) => live.leftWindow(c)), [true, false]);
  assert.deepEqual([9, 10].map((c) => live.pastEdge(c)), [false, true]);
  assert.equal(setup(manifest({ live: false })).live.pastEdge(10), false); // the timeline ends a finished ladder
});

test('seeks land inside the window and a chunk before the edge; a viewer behind it jumps to the live start', () => {
  const { live, video } = setup(manifest({ start: 2, count: 8 }));
  assert.deepEqual([0.5, 4.2, 7.9].map((t) => live.clampSeek(t)), [2, 4.2, 7]);
  live.jumpToEdge();
  assert.equal(video.currentTime, 5);
  assert.deepEqual(live.status(), { behindLiveS: 3 });
  const finished = setup(manifest({ live: false }));
  finished.live.jumpToEdge();
  assert.equal(finished.video.currentTime, 0);
  assert.deepEqual(finished.live.status(), { behindLiveS: null });
});

test('gaps: a chunk every level lacks is a hole; skipped holes count as done', () => {
  const { live } = setup(manifest({ count: 8, gaps: { 0: [3, 4], 1: [4, 5] } }));
  assert.deepEqual([3, 4, 5].map((c) => live.isHole(c)), [false, true, false]);
  live.skip(4);
  live.skip(5);
  assert.equal(live.doneThrough(3), 5);
  assert.equal(live.doneThrough(2), 2); // chunk 3 is not in yet
  live.clearSkipped();
  assert.equal(live.doneThrough(3), 3);
});

test('the playhead jumps over skipped holes once it is 0.25 s from them and what follows is buffered', () => {
  const { live, video, setBufferedFrom } = setup(manifest({ count: 8 }));
  live.skip(4);
  live.skip(5);
  video.currentTime = 3.7; // 0.3 s before the hole
  live.poll();
  assert.equal(video.currentTime, 3.7);
  video.currentTime = 3.8;
  live.poll();
  assert.equal(video.currentTime, 3.8); // chunk 6 not buffered yet
  setBufferedFrom(6);
  live.poll();
  assert.equal(video.currentTime, 6);
});

test('seekable range: a live window; a looped ladder up to the end of the next pass', () => {
  const window = setup(manifest({ start: 2, count: 8 }));
  window.live.updateSeekable(5);
  assert.deepEqual(window.seekable, [[8, 2]]);
  const looped = setup(manifest({ count: 10, live: false }), { loop: true });
  looped.live.updateSeekable(12); // pass 1 is being appended
  assert.deepEqual(looped.seekable, [[30]]);
  const finished = setup(manifest({ count: 10, live: false }));
  finished.live.updateSeekable(5);
  assert.deepEqual(finished.seekable, []); // a finite duration needs none
});

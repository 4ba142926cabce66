import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protocol from '../protocol.js';
import { backoffDelayMs } from '../backoff.js';

const manifest = {
  fps: 30, width: 512, height: 512, frames: 141, chunk_frames: 60, chunk_count: 3, live: false,
  generator: { id: 'tiny:abc', name: 'tiny' }, noise_seed: 88, prev_latent_weight: 0.05, prev_latent_rule: 'chunk-reset',
};

test('binary frames round-trip: 4-byte big-endian header length, JSON header, payload', () => {
  const frame = protocol.encodeBinary({ type: 'segment', chunk: 3 }, new Uint8Array([1, 2, 3]));
  const headerLength = new DataView(frame.buffer).getUint32(0, false);
  assert.equal(headerLength, JSON.stringify({ type: 'segment', chunk: 3 }).length);
  const { header, payload } = protocol.decodeBinary(frame.buffer, 10);
  assert.deepEqual(header, { type: 'segment', chunk: 3 });
  assert.deepEqual([...payload], [1, 2, 3]);
});

test('broken binary frames are refused with the defect named', () => {
  assert.throws(() => protocol.decodeBinary(new ArrayBuffer(3), 10), /no header length/);
  const long = new Uint8Array(8);
  new DataView(long.buffer).setUint32(0, 100, false);
  assert.throws(() => protocol.decodeBinary(long.buffer, 10), /runs past the end/);
  const huge = new Uint8Array(8);
  new DataView(huge.buffer).setUint32(0, 5000, false);
  assert.throws(() => protocol.decodeBinary(huge.buffer, 10), /exceeds 4096/);
  const notJson = protocol.encodeBinary({ type: 'x' });
  notJson[5] = 0x7b; // '{' in place of '"'
  assert.throws(() => protocol.decodeBinary(notJson.buffer, 10), /not UTF-8 JSON/);
  const noType = protocol.encodeBinary({ kind: 'x' });
  assert.throws(() => protocol.decodeBinary(noType.buffer, 10), /string "type"/);
  const big = protocol.encodeBinary({ type: 'init' }, new Uint8Array(11));
  assert.throws(() => protocol.decodeBinary(big.buffer, 10), /'init' payload of 11 bytes exceeds 10/);
});

test('chunk headers must add up to the payload', () => {
  protocol.checkChunkHeader({ chunk: 1, level: 0, prefix_bytes: 2, chunk_bytes: 3 }, 5);
  assert.throws(() => protocol.checkChunkHeader({ chunk: 1, level: 0, prefix_bytes: 2, chunk_bytes: 3 }, 6), /announces 2 \+ 3 bytes, payload has 6/);
  assert.throws(() => protocol.checkChunkHeader({ chunk: -1, level: 0, prefix_bytes: 0, chunk_bytes: 0 }, 0), /'chunk'/);
});

test('control messages', () => {
  assert.deepEqual(JSON.parse(protocol.hello('sky', 'bba', 'UA')), { type: 'hello', version: 1, channel: 'sky', abr: 'bba', user_agent: 'UA' });
  assert.deepEqual(JSON.parse(protocol.get(4, 2, true)), { type: 'get', chunk: 4, level: 2, prefix: true });
  assert.deepEqual(JSON.parse(protocol.seek(7)), { type: 'seek', chunk: 7 });
  assert.deepEqual(JSON.parse(protocol.stats({ buffer_s: 1.5, daemon_fps: NaN, stalls: 0 })), { type: 'stats', buffer_s: 1.5, daemon_fps: null, stalls: 0 });
  assert.throws(() => protocol.decodeControl('[1]'), /JSON object with a string "type"/);
  assert.throws(() => protocol.decodeControl('{'), /not JSON/);
  assert.throws(() => protocol.decodeControl('x'.repeat(20), 10), /exceeds 10/);
});

test('open carries the stream setup from the manifest and init.bin', () => {
  const frame = protocol.open(manifest, new Uint8Array([9, 9]), 'page-1');
  const { header, payload } = protocol.decodeBinary(frame.buffer, 10);
  assert.deepEqual(header, {
    type: 'open', version: 1, session: 'page-1',
    stream: { generator_id: 'tiny:abc', width: 512, height: 512, fps: 30, noise_seed: 88, prev_latent_weight: 0.05, prev_latent_rule: 'chunk-reset', chunk_frames: 60 },
  });
  assert.deepEqual([...payload], [9, 9]);
});

test('reconnect backoff doubles from 0.5 s up to 8 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map((a) => backoffDelayMs(a)), [500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

import { Timeline } from '../controllers/timeline.js';

test('timeline: a looped ladder repeats on one continuous clock; without loop it ends', () => {
  const manifest = { chunk_count: 3, chunk_frames: 30, fps: 30, frames: 75, live: false }; // last chunk 15 frames
  const looped = new Timeline(manifest, true);
  assert.equal(looped.passS, 2.5);
  assert.deepEqual(looped.split(7), { pass: 2, chunk: 1 });
  assert.equal(looped.offsetS(7), 5);
  assert.equal(looped.atTime(2.4), 2);
  assert.equal(looped.atTime(2.5), 3); // pass 1, chunk 0
  assert.equal(looped.atTime(6.1), 7);
  assert.ok(looped.has(100));
  const once = new Timeline(manifest, false);
  assert.deepEqual(once.split(2), { pass: 0, chunk: 2 });
  assert.equal(once.atTime(9), 2);
  assert.ok(once.has(2) && !once.has(3));
  assert.equal(new Timeline({ ...manifest, live: true }, true).endless, false);
});

test('a closed chunk is told by its header: format version 2 with flag bit 1', () => {
  const header = (version, flags) => new Uint8Array([0x50, 0x52, 0x4d, 0x43, version, flags, 1, 4]);
  assert.equal(protocol.isClosedChunk(header(2, 0x02)), true);
  assert.equal(protocol.isClosedChunk(header(1, 0x00)), false);
  assert.equal(protocol.isClosedChunk(header(2, 0x01)), false); // a switch prefix
  assert.equal(protocol.isClosedChunk(new Uint8Array([0x50, 0x52])), false);
});

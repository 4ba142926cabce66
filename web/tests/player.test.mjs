// The facade reads every controller through its status(): the snapshot before anything came.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Player } from '../player.js';

const KEYS = [
  'channel', 'state', 'abr', 'manualLevel', 'levelId', 'level', 'levels', 'chosenLevel', 'chosenOnScreenIn',
  'qualityValue', 'qualityMetric', 'qualityMeasure', 'ssim', 'psnr', 'vmaf', 'chunk', 'pass', 'chunkCount', 'live',
  'windowStart', 'behindLiveS', 'generator', 'streamFps', 'bufferS', 'maxBufferS', 'throughputKbps', 'daemonFps',
  'daemonDevice', 'daemonGeneratorId', 'daemonQueue', 'daemonConnected', 'serverConnected', 'stalls', 'stallS',
  'startupS', 'startupMarks', 'currentTime', 'duration', 'paused', 'decodedFrames', 'droppedFrames', 'blocked', 'statsSent',
];

test('the snapshot before a manifest: every field, nothing playing', () => {
  const video = Object.assign(new EventTarget(), { currentTime: 0, duration: NaN, paused: true, seeking: false, buffered: { length: 0 } });
  const player = new Player({ video, serverUrl: 'ws://s/ws', daemonUrl: 'ws://d', channel: 'sky', abr: 'bba', clock: () => 5 });
  const s = player.snapshot();
  assert.deepEqual(Object.keys(s), KEYS);
  assert.equal(s.channel, null); // the stream controller takes the channel on start()
  assert.deepEqual(
    [s.state, s.abr, s.manualLevel, s.levelId, s.chosenLevel, s.chosenOnScreenIn, s.chunk, s.behindLiveS, s.maxBufferS],
    ['waiting for the server', 'bba', null, null, null, null, null, null, 15],
  );
  assert.deepEqual([s.stalls, s.stallS, s.startupS, s.startupMarks, s.daemonFps, s.blocked], [0, 0, null, {}, null, null]);
  assert.equal(player.daemonSpeed(), null);
  player.destroy();
});

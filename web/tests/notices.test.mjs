// What the page tells a person: the notices for a slow daemon and a generator mismatch, the
// stats panel's level and quality texts, the charts' axis, and the channel list's hints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { ErrorCode } from '../protocol.js';
import { NoticeController, namesWeights } from '../controllers/notice-controller.js';
import { chosenLevelText, qualityText } from '../ui/stats-panel.js';
import { niceCeil } from '../ui/charts.js';
import { channelsUrl, daemonHint } from '../ui/channel-list.js';

function notices(speed = () => null) {
  const bus = new EventBus();
  const shown = new Map();
  bus.on(Events.NOTICE, ({ kind, text }) => (text === null ? shown.delete(kind) : shown.set(kind, text)));
  const controller = new NoticeController(bus, { pageOrigin: 'http://127.0.0.1:8080', speed });
  controller.start();
  return { bus, shown, controller };
}

test('a daemon slower than real time is named, with its speed, the stream fps and what to do', (t) => {
  const speed = { daemonFps: 4.4, fps: 30, chunkFrames: 60, device: 'cpu', firstChunkWaitS: null };
  const { bus, shown, controller } = notices(() => speed);
  t.after(() => controller.stop());
  bus.trigger(Events.STALL_STARTED, { atS: 1 });
  assert.equal(shown.get('stall'), 'Waiting for video (stalled)...');
  controller.checkSpeed(); // what the once-a-second timer does
  assert.match(shown.get('speed'), /4\.4 frames\/s on cpu, slower than real time: this stream plays 30 frames\/s/);
  assert.match(shown.get('speed'), /--device cuda/);
  assert.match(shown.get('stall'), /slower than real time \(see above\)/);
  speed.daemonFps = 40; // keeps up (40 x 0.9 >= 30): the notice goes
  controller.checkSpeed();
  assert.equal(shown.has('speed'), false);
  assert.equal(shown.get('stall'), 'Waiting for video (stalled)...');
  speed.daemonFps = 20;
  speed.device = 'cuda:0';
  controller.checkSpeed();
  assert.match(shown.get('speed'), /--backend auto/);
});

test('before any segment, a first chunk that takes longer than it plays is already too slow', (t) => {
  const speed = { daemonFps: null, fps: 30, chunkFrames: 60, device: 'cpu', firstChunkWaitS: 1.5 };
  const { shown, controller } = notices(() => speed);
  t.after(() => controller.stop());
  controller.checkSpeed();
  assert.equal(shown.has('speed'), false); // 60 frames in 1.5 s could still be 40 fps
  speed.firstChunkWaitS = 3.2;
  controller.checkSpeed();
  assert.match(shown.get('speed'), /first chunk \(2\.00 s of video\) for 3\.2 s on cpu: it is slower than real time/);
});

test('generator mismatch: a placeholder id asks for a new import with the daemon id, a real one for other weights', (t) => {
  const { bus, shown, controller } = notices();
  t.after(() => controller.stop());
  const manifest = (id) => ({ generator: { id, name: 'sd-turbo + taesd' } });
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'sky', manifest: manifest('sd-turbo+taesd:legacy-unverified') });
  bus.trigger(Events.DAEMON_ERROR, { code: ErrorCode.GENERATOR_MISMATCH, message: 'the stream needs another generator' });
  assert.match(shown.get('generator'), /placeholder generator id `sd-turbo\+taesd:legacy-unverified`/);
  assert.match(shown.get('generator'), /--generator-id YOUR-DAEMON'S-ID/);
  bus.trigger(Events.DAEMON_STATUS, { fps: 0, queueDepth: 0, device: 'cpu', generatorId: 'tiny:cf45' });
  assert.match(shown.get('generator'), /`promptus import-legacy FOLDER --out LADDER --generator-id tiny:cf45`/);
  assert.doesNotMatch(shown.get('generator'), /restart|--weights/);

  bus.trigger(Events.MANIFEST_LOADED, { channel: 'other', manifest: manifest('sd-turbo:0123abcd') });
  assert.equal(shown.has('generator'), false); // another channel: the old advice goes
  bus.trigger(Events.DAEMON_ERROR, { code: ErrorCode.GENERATOR_MISMATCH, message: 'needs sd-turbo:0123abcd' });
  assert.match(shown.get('generator'), /needs generator `sd-turbo:0123abcd` .*daemon here runs `tiny:cf45`/);
  assert.match(shown.get('generator'), /`promptus daemon --generator sd-turbo`/);
  assert.doesNotMatch(shown.get('generator'), /import-legacy/);
});

test('generator ids: a weights hash or a placeholder', () => {
  assert.equal(namesWeights('tiny:cf453d3083e17c42'), true);
  assert.equal(namesWeights('sd-turbo+taesd:legacy-unverified'), false);
  assert.equal(namesWeights('nocolon'), false);
});

const level = (id, name) => ({ id, name, rank: 2, interval: 10, kbps: 100 });

test('the chosen level is shown apart from the playing one, with when it will be on screen', () => {
  const base = { abr: 'mpc', chosenLevel: level(0, 'r2n10'), chosenOnScreenIn: { seconds: 14.2, atLeast: false } };
  assert.equal(chosenLevelText({ ...base, manualLevel: 0 }), '0: r2n10 (manual); on screen in 14.2 s (buffered video plays first)');
  assert.equal(chosenLevelText({ ...base, manualLevel: null, chosenOnScreenIn: null }), '0: r2n10 (auto, mpc)');
  assert.match(chosenLevelText({ ...base, manualLevel: 0, chosenOnScreenIn: { seconds: 3, atLeast: true } }), /after the 3\.0 s buffered/);
});

test('quality: the SSIM index with the dB the chart plots, PSNR in dB, one unit each', () => {
  const s = { ssim: 0.9, psnr: 28, qualityDb: 10, qualityMetric: 'ssim' };
  assert.equal(qualityText(s), 'SSIM 0.900 = 10.0 dB, PSNR 28.0 dB');
  assert.equal(qualityText({ ssim: null, psnr: 28, qualityDb: 28, qualityMetric: 'psnr' }), 'PSNR 28.0 dB');
  assert.equal(qualityText({ ssim: null, psnr: null, qualityDb: null, qualityMetric: null }), 'not measured');
});

test('chart axis maxima are round numbers above the largest sample', () => {
  assert.deepEqual([0.53, 1, 7, 10.2, 15, 194, 6511].map(niceCeil), [1, 1, 10, 20, 20, 200, 10000]);
});

test('the channel list knows the server URL and which daemon each channel needs', () => {
  assert.equal(channelsUrl('ws://127.0.0.1:8080/ws'), 'http://127.0.0.1:8080/channels');
  assert.equal(channelsUrl('wss://host.example/ws?x=1'), 'https://host.example/channels');
  const channel = (id) => ({ name: 'c', generator: { id, name: 'n' }, live: false, seconds: 4, levels: 3 });
  assert.equal(daemonHint(channel('tiny:ab12'), 'tiny:ab12'), 'plays with the daemon running here');
  assert.match(daemonHint(channel('tiny-taesd:ab12'), 'tiny:ff'), /`promptus daemon --generator tiny-taesd`/);
  assert.match(daemonHint(channel('sd-turbo+taesd:legacy-unverified'), null), /placeholder/);
});

// What the page tells a person: the notices for a slow daemon and a generator mismatch, the
// stats panel's level and quality texts, the charts' axis, and the channel list's hints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, Events } from '../events.js';
import { ErrorCode } from '../protocol.js';
import { NoticeController, daemonCommand, namesWeights, paceText } from '../controllers/notice-controller.js';
import { generatorNote } from '../ui/generator-note.js';
import { abrChoiceText, chosenLevelText, daemonText, qualityText } from '../ui/stats-panel.js';
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
  assert.equal(
    shown.get('generator'),
    'This channel needs generator `sd-turbo:0123abcd` (the daemon here runs `tiny:cf45`): start the daemon with ' +
      '`promptus daemon --generator sd-turbo --weights PATH --taesd DIR`, then press Retry daemon.',
  );
});

test('generator mismatch: one sentence with the exact command; nano and tiny need no weight files', (t) => {
  const { bus, shown, controller } = notices();
  t.after(() => controller.stop());
  bus.trigger(Events.DAEMON_STATUS, { fps: 0, queueDepth: 0, device: 'cpu', generatorId: 'tiny:cf45' });
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'demo', manifest: { generator: { id: 'nano:9a8b', name: 'nano' } } });
  bus.trigger(Events.DAEMON_ERROR, { code: ErrorCode.GENERATOR_MISMATCH, message: 'stream was made for generator nano:9a8b' });
  const text = shown.get('generator');
  assert.equal(
    text,
    'This channel needs generator `nano:9a8b` (the daemon here runs `tiny:cf45`): start the daemon with ' +
      '`promptus daemon --generator nano`, then press Retry daemon.',
  );
  assert.equal(text.split('. ').length, 1); // one sentence
  assert.doesNotMatch(text, /weight/);
  // other weights of the same generator: no command can load them; the prompts need fitting again
  bus.trigger(Events.DAEMON_STATUS, { fps: 0, queueDepth: 0, device: 'cpu', generatorId: 'nano:1111' });
  assert.match(shown.get('generator'), /^This channel was fitted on other nano weights \(`nano:9a8b`\), the daemon here runs `nano:1111`: fit the channel again/);
  assert.equal(daemonCommand('tiny-taesd:ab'), 'promptus daemon --generator tiny-taesd --taesd DIR');
  assert.equal(daemonCommand('future:ab'), 'promptus daemon --generator future');
});

test('a daemon that stops takes its refusal with it; the advice starts the channel\'s generator', (t) => {
  const { bus, shown, controller } = notices();
  t.after(() => controller.stop());
  bus.trigger(Events.MANIFEST_LOADED, { channel: 'demo', manifest: { generator: { id: 'nano:9a8b', name: 'nano' } } });
  bus.trigger(Events.DAEMON_STATUS, { fps: 0, queueDepth: 0, device: 'cpu', generatorId: 'tiny:cf45' });
  bus.trigger(Events.DAEMON_ERROR, { code: ErrorCode.GENERATOR_MISMATCH, message: 'other generator' });
  assert.equal(shown.has('generator'), true);
  bus.trigger(Events.DAEMON_CLOSED, { url: 'ws://127.0.0.1:9090', code: 1006, reason: '', retryInMs: 1000, everOpened: false });
  assert.equal(shown.has('generator'), false); // no two banners that contradict
  assert.match(shown.get('daemon'), /^No generation daemon answers at ws:\/\/127\.0\.0\.1:9090\. Start it on this machine with `promptus daemon --generator nano`/);
  bus.trigger(Events.DAEMON_CONNECTED, { url: 'ws://127.0.0.1:9090' });
  assert.equal(shown.has('daemon'), false);
});

test('pace: one sentence from the daemon\'s fps, the same for the notice and the generator note', () => {
  const speed = { daemonFps: 31.24, fps: 24, chunkFrames: 24, device: 'cpu', firstChunkWaitS: null };
  assert.equal(paceText(speed), 'The daemon generates 31.2 frames/s on cpu, fast enough for real time: this stream plays 24 frames/s');
  assert.equal(paceText({ ...speed, daemonFps: 12 }), 'The daemon generates 12.0 frames/s on cpu, slower than real time: this stream plays 24 frames/s');
  assert.equal(paceText({ ...speed, daemonFps: null }), null);
  const s = { generator: { id: 'nano:9a8b', name: 'nano' }, blocked: null, daemonConnected: true, daemonGeneratorId: 'nano:9a8b' };
  for (const daemonFps of [31.24, 12]) {
    const note = generatorNote(s, { ...speed, daemonFps }).text;
    assert.ok(note.endsWith(`${paceText({ ...speed, daemonFps })}.`), note);
    assert.doesNotMatch(note, /two CPU cores|in real time,|keeps up/);
  }
  assert.match(generatorNote(s, { ...speed, daemonFps: null }).text, /The daemon here has not generated any of it yet\.$/);
  assert.match(generatorNote({ ...s, daemonConnected: false }, null).text, /No daemon generates it now/);
  const blocked = generatorNote({ ...s, blocked: { kind: ErrorCode.GENERATOR_MISMATCH }, daemonGeneratorId: 'tiny:cf45' }, speed);
  assert.equal(blocked.className, 'note blocked');
  assert.match(blocked.text, /^Nothing plays: this channel needs generator nano \(nano:9a8b\), the daemon here runs tiny:cf45\./);
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
  assert.equal(chosenLevelText({ ...base, manualLevel: null, chosenOnScreenIn: null }), '0: r2n10 (ABR mpc)');
  // ?abr=fixed&fixed=2: the rule picks, as the Level menu's first entry says
  assert.equal(chosenLevelText({ ...base, abr: 'fixed', chosenLevel: level(2, 'r8n5'), manualLevel: null, chosenOnScreenIn: null }), '2: r8n5 (ABR fixed)');
  assert.equal(abrChoiceText('fixed'), 'ABR fixed');
  assert.match(chosenLevelText({ ...base, manualLevel: 0, chosenOnScreenIn: { seconds: 3, atLeast: true } }), /after the 3\.0 s buffered/);
});

test('quality: the SSIM index with the dB of it the chart plots, PSNR in dB, each named where shown', () => {
  const playing = level(0, 'r2n10');
  const s = { level: playing, ssim: 0.644, psnr: 20.6, qualityValue: 4.486, qualityMetric: 'ssim' };
  assert.equal(qualityText(s), 'SSIM 0.644 (4.5 dB SSIM), PSNR 20.6 dB');
  assert.equal(qualityText({ level: playing, ssim: null, psnr: 28, qualityValue: 28, qualityMetric: 'psnr' }), 'PSNR 28.0 dB');
  assert.equal(qualityText({ level: playing, ssim: null, psnr: null, qualityValue: null, qualityMetric: null }), 'not measured');
  assert.equal(qualityText({ ...s, level: null }), '-'); // nothing plays
  assert.equal(qualityText({ ...s, vmaf: 71.24, qualityValue: 71.24, qualityMetric: 'vmaf' }), 'SSIM 0.644, PSNR 20.6 dB, VMAF 71.2');
});

test('the daemon row: its speed once it generated, what it is before, and nothing when away', () => {
  const s = { daemonConnected: true, daemonDevice: 'cpu', daemonFps: null, streamFps: 24 };
  assert.equal(daemonText(s), 'connected, on cpu, no frames generated yet');
  assert.equal(daemonText({ ...s, daemonDevice: null }), 'connected, no frames generated yet');
  assert.equal(daemonText({ ...s, daemonFps: 12 }), '12.0 fps on cpu, slower than real time (stream: 24 fps)');
  assert.equal(daemonText({ ...s, daemonFps: 30 }), '30.0 fps on cpu');
  assert.equal(daemonText({ ...s, daemonConnected: false }), 'not connected');
});

test('chart axis maxima are round numbers above the largest sample', () => {
  assert.deepEqual([0.53, 1, 7, 10.2, 15, 194, 6511].map(niceCeil), [1, 1, 10, 20, 20, 200, 10000]);
});

test('the channel list knows the server URL and which daemon each channel needs', () => {
  assert.equal(channelsUrl('ws://127.0.0.1:8080/ws'), 'http://127.0.0.1:8080/channels');
  assert.equal(channelsUrl('wss://host.example/ws?x=1'), 'https://host.example/channels');
  const channel = (id) => ({ name: 'c', generator: { id, name: 'n' }, live: false, seconds: 4, levels: 3 });
  assert.equal(daemonHint(channel('tiny:ab12'), 'tiny:ab12'), 'plays with the daemon running here');
  assert.match(daemonHint(channel('tiny-taesd:ab12'), 'tiny:ff'), /`promptus daemon --generator tiny-taesd --taesd DIR`/);
  assert.match(daemonHint(channel('sd-turbo+taesd:legacy-unverified'), null), /placeholder/);
});

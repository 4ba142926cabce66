import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromUrl } from '../ui/page-config.js';

test('defaults: mpc, channel demo, server on the page host, daemon on loopback, loop on', () => {
  const { config, problems } = configFromUrl('http://127.0.0.1:8080/');
  assert.deepEqual(problems, []);
  assert.equal(config.abr, 'mpc');
  assert.equal(config.channel, 'demo');
  assert.equal(config.serverUrl, 'ws://127.0.0.1:8080/ws');
  assert.equal(config.daemonUrl, 'ws://127.0.0.1:9090');
  assert.equal(config.manualLevel, null);
  assert.equal(config.loop, true);
  assert.equal(config.maxBufferS, 15);
  assert.equal(config.quality, 'ssim');
  assert.equal(config.pageOrigin, 'http://127.0.0.1:8080');
});

test('?quality= picks the measure the ABR ranks chunks by; an unknown one is reported', () => {
  assert.equal(configFromUrl('http://h/?quality=vmaf').config.quality, 'vmaf');
  const { config, problems } = configFromUrl('http://h/?quality=constructor');
  assert.equal(config.quality, 'ssim');
  assert.deepEqual(problems, ["unknown quality 'constructor' (known: ssim, psnr, vmaf); using ssim"]);
});

test('URL parameters select ABR, channel, daemon, level', () => {
  const { config, problems } = configFromUrl('https://host.example/?abr=fixed&fixed=2&level=1&channel=sky&daemon=ws://127.0.0.1:9191&loop=0&buffer=4');
  assert.deepEqual(problems, []);
  assert.equal(config.abr, 'fixed');
  assert.deepEqual(config.abrOptions, { level: 2 });
  assert.equal(config.manualLevel, 1);
  assert.equal(config.channel, 'sky');
  assert.equal(config.daemonUrl, 'ws://127.0.0.1:9191/');
  assert.equal(config.serverUrl, 'wss://host.example/ws');
  assert.equal(config.loop, false);
  assert.equal(config.maxBufferS, 4);
});

test('bad parameters are reported and replaced by defaults', () => {
  const { config, problems } = configFromUrl('http://h/?abr=pensieve&level=-1&daemon=http://x&buffer=1');
  assert.equal(config.abr, 'mpc');
  assert.equal(config.manualLevel, null);
  assert.equal(config.daemonUrl, 'ws://127.0.0.1:9090');
  assert.equal(config.maxBufferS, 15);
  assert.equal(problems.length, 4);
  assert.match(problems[0], /unknown abr 'pensieve'/);
  assert.match(problems[1], /'level' must be a level number >= 0, got '-1'/);
  assert.match(problems[2], /'buffer' must be seconds in \[2, 120\], got '1'/);
  assert.match(problems[3], /'daemon' must be a ws:\/\/ or wss:\/\/ URL/);
});

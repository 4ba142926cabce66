import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BolaRule,
  State,
  bolaParameters,
  levelFromBuffer,
  maxBufferForLevel,
  minBufferForLevel,
} from '../abr/bola.js';
import { KBPS, context } from './helpers.mjs';

const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test('parameters: utilities ln(kbps) from 1, target max(15, 10 + 2 x 4) = 18 s', () => {
  const p = bolaParameters(KBPS, 15);
  close(p.utilities[3], 1 + 3 * Math.log(2));
  close(p.gp, (3 * Math.log(2)) / (18 / 10 - 1));
  close(p.Vp, 10 / p.gp);
  assert.equal(bolaParameters([300], 15), null);
});

test('buffer thresholds between levels and the level picked at a buffer', () => {
  const p = bolaParameters(KBPS, 15);
  // Doubling ladder: threshold of level i = Vp (gp + u_(i-1) - ln 2).
  close(minBufferForLevel(p, 1), p.Vp * (p.gp + 1 - Math.log(2)));
  close(minBufferForLevel(p, 2), p.Vp * (p.gp + 1));
  close(maxBufferForLevel(p, 3), p.Vp * (p.utilities[3] + p.gp));
  assert.equal(levelFromBuffer(p, 11.18), 0);
  assert.equal(levelFromBuffer(p, 11.19), 1);
  assert.equal(levelFromBuffer(p, 16.6), 3);
});

test('startup by throughput, then steady with the placeholder buffer', () => {
  const bola = new BolaRule();
  // STARTUP: safe throughput 450 -> level 2; placeholder = 13.847 - 2 s buffered.
  assert.equal(bola.chooseLevel(context({ bufferS: 2, throughputKbps: 500, nowS: 100 })), 2);
  assert.equal(bola.state, State.STEADY);
  close(bola.placeholderS, minBufferForLevel(bolaParameters(KBPS, 15), 2) - 2);
  // STEADY: a chunk arrived at t=101 (decay x0.99), buffer 4 s: 4 + 11.73 -> level 2.
  const arrived = [{ bytes: 100000, seconds: 1, endS: 101 }];
  assert.equal(bola.chooseLevel(context({ bufferS: 4, throughputKbps: 500, nowS: 101, downloads: arrived })), 2);
  close(bola.placeholderS, 11.847186775703902 * 0.99);
  // Five idle seconds (buffer full, nothing fetched) join the placeholder: level 3.
  assert.equal(bola.chooseLevel(context({ bufferS: 4, throughputKbps: 1000, nowS: 106, downloads: arrived })), 3);
  close(bola.placeholderS, 11.847186775703902 * 0.99 + 5);
  // A stall empties the placeholder: level 0.
  assert.equal(bola.chooseLevel(context({ bufferS: 0.5, throughputKbps: 1000, nowS: 107, downloads: arrived, rebuffering: true })), 0);
  assert.equal(bola.placeholderS, 0);
});

test('BOLA-O: no climb above what the throughput sustains', () => {
  const bola = new BolaRule();
  bola.chooseLevel(context({ bufferS: 2, throughputKbps: 150, nowS: 100 })); // startup: level 0
  const level = bola.chooseLevel(context({ bufferS: 14.9, throughputKbps: 150, nowS: 100, downloads: [] }));
  assert.equal(level, 0); // buffer alone says level 2; safe throughput 135 kbps sustains level 0
});

test('one level, no estimate, slow daemon, reset', () => {
  const single = context({ levels: [{ id: 0, kbps: 300 }], upcoming: [[{ bytes: 75000, quality: 12 }]] });
  const bola = new BolaRule();
  assert.equal(bola.chooseLevel(single), 0);
  assert.equal(bola.state, State.ONE_BITRATE);
  assert.equal(new BolaRule().chooseLevel(context({ bufferS: 1, throughputKbps: null })), 0);
  assert.equal(new BolaRule().chooseLevel(context({ bufferS: 1, throughputKbps: 1e6, daemonFps: 10 })), 0);
  const seeking = new BolaRule();
  seeking.chooseLevel(context({ bufferS: 2, throughputKbps: 500 }));
  seeking.reset();
  assert.equal(seeking.state, State.STARTUP);
  assert.equal(seeking.placeholderS, 0);
});

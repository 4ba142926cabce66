import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThroughputRule } from '../abr/throughput.js';
import { FixedRule } from '../abr/fixed.js';
import { context } from './helpers.mjs';

const rule = new ThroughputRule();

test('no estimate yet: the lowest level', () => {
  assert.equal(rule.chooseLevel(context({ throughputKbps: null })), 0);
});

test('highest level whose bitrate is at most 0.9 x the estimate', () => {
  assert.equal(rule.chooseLevel(context({ throughputKbps: 450 })), 2); // safe 405 >= 400
  assert.equal(rule.chooseLevel(context({ throughputKbps: 444 })), 1); // safe 399.6 < 400
  assert.equal(rule.chooseLevel(context({ throughputKbps: 50 })), 0); // nothing fits: lowest
  assert.equal(rule.chooseLevel(context({ throughputKbps: 1e6 })), 3);
});

test('the daemon is a second pipe: too slow means the lowest level', () => {
  assert.equal(rule.chooseLevel(context({ throughputKbps: 1e6, daemonFps: 20 })), 0);
  assert.equal(rule.chooseLevel(context({ throughputKbps: 1e6, daemonFps: 60 })), 3);
});

test('fixed holds its level, clamped to the ladder, whatever the context says', () => {
  assert.equal(new FixedRule({ level: 2 }).chooseLevel(context({ bufferS: 0, daemonFps: 1 })), 2);
  assert.equal(new FixedRule({ level: 9 }).chooseLevel(context()), 3);
  assert.equal(new FixedRule().chooseLevel(context({ bufferS: 15, throughputKbps: 1e6 })), 0);
  assert.throws(() => new FixedRule({ level: -1 }), RangeError);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ewma } from '../abr/ewma.js';
import { ThroughputEstimator } from '../abr/throughput-estimator.js';

const close = (actual, expected, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);

test('EWMA: one sample is returned exactly (zero-factor correction)', () => {
  const e = new Ewma(3);
  e.sample(1, 800);
  close(e.getEstimate(), 800);
});

test('EWMA: half-life weighting with exact numbers', () => {
  const e = new Ewma(2); // alpha = 0.5^(1/2)
  e.sample(2, 100); // estimate 100 * 0.5 = 50, total 2 -> 50 / 0.5 = 100
  e.sample(2, 300); // 300 * 0.5 + 0.5 * 50 = 175, total 4 -> 175 / 0.75
  close(e.getEstimate(), 175 / 0.75);
  assert.equal(new Ewma(1).getEstimate(), 0);
  assert.throws(() => new Ewma(0), RangeError);
});

test('estimator: unknown before any sample, then kbps of the transfer', () => {
  const est = new ThroughputEstimator();
  assert.equal(est.estimateKbps(), null);
  est.addSample(1, 125000); // 1 Mbit in 1 s
  close(est.estimateKbps(), 1000);
  assert.equal(new ThroughputEstimator({ defaultKbps: 500 }).estimateKbps(), 500);
});

test('estimator: drops fast (fast EWMA) and rises slowly (slow EWMA)', () => {
  const est = new ThroughputEstimator();
  est.addSample(1, 125000); // 1000 kbps
  est.addSample(1, 12500); // 100 kbps
  const fastA = Math.pow(0.5, 1 / 3);
  const slowA = Math.pow(0.5, 1 / 8);
  const fast = (100 * (1 - fastA) + fastA * (1000 * (1 - fastA))) / (1 - fastA * fastA);
  const slow = (100 * (1 - slowA) + slowA * (1000 * (1 - slowA))) / (1 - slowA * slowA);
  assert.ok(fast < slow);
  close(est.estimateKbps(), fast); // the minimum: the fast one after a drop
  const rising = new ThroughputEstimator();
  rising.addSample(1, 12500);
  rising.addSample(1, 125000);
  const slowUp = (1000 * (1 - slowA) + slowA * (100 * (1 - slowA))) / (1 - slowA * slowA);
  close(rising.estimateKbps(), slowUp); // the slow one after a rise
});

test('estimator: tiny durations are clamped to 50 ms; empty transfers ignored; reset forgets', () => {
  const est = new ThroughputEstimator();
  est.addSample(0, 1000); // counted as 1000 B in 0.05 s = 160 kbps
  close(est.estimateKbps(), 160);
  est.addSample(1, 0);
  close(est.estimateKbps(), 160);
  est.reset();
  assert.equal(est.estimateKbps(), null);
});

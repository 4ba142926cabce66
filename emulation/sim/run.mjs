/**
 * Batch runner for the fast mode: `node run.mjs JOB.json` runs every session of the job and
 * prints one JSON line per session (in job order) on stdout, so a Python driver can show
 * progress and many sessions share one Node process.
 *
 * JOB.json: {ladder, traces: [{name, starts, mbps, durationS}], config, abrOptions: {name: {...}},
 *            sessions: [{id, trace (index), abr (name), seed, chunks}], abrDir?}
 * A session that throws is reported as {id, error} and the batch goes on.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { TraceLink } from './link.mjs';
import { mulberry32 } from './rng.mjs';
import { simulateSession } from './session.mjs';

const DEFAULT_ABR_DIR = new URL('../../web/abr/', import.meta.url);

/** The player's rule registry (`web/abr/index.js`): createAbr(name, options), ThroughputEstimator. */
async function loadAbr(abrDir) {
  const base = abrDir ? pathToFileURL(abrDir.endsWith('/') ? abrDir : `${abrDir}/`) : DEFAULT_ABR_DIR;
  const { createAbr, ThroughputEstimator } = await import(new URL('index.js', base));
  return { createAbr, ThroughputEstimator };
}

async function main() {
  const jobPath = process.argv[2];
  if (!jobPath) throw new Error('usage: node run.mjs JOB.json');
  const job = JSON.parse(readFileSync(jobPath, 'utf8'));
  const { createAbr, ThroughputEstimator } = await loadAbr(job.abrDir);
  const lines = [];
  const flush = () => {
    if (lines.length) process.stdout.write(lines.join('\n') + '\n');
    lines.length = 0;
  };
  for (const session of job.sessions) {
    const trace = job.traces[session.trace];
    let line;
    try {
      const random = mulberry32(session.seed);
      const offsetS = job.config.randomStart === false ? 0 : random() * trace.durationS;
      const rule = createAbr(session.abr, (job.abrOptions ?? {})[session.abr] ?? {});
      const result = simulateSession({
        ladder: job.ladder,
        link: new TraceLink(trace, offsetS),
        rule,
        estimator: new ThroughputEstimator(),
        random,
        chunks: session.chunks,
        config: job.config,
      });
      rule.destroy?.();
      line = JSON.stringify({ id: session.id, offsetS, ...result });
    } catch (error) {
      line = JSON.stringify({ id: session.id, error: String(error?.stack ?? error) });
    }
    lines.push(line);
    if (lines.length >= 8) flush();
  }
  flush();
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});

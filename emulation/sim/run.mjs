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

/**
 * What the browser player uses: the rule registry and throughput estimator (`web/abr/index.js`),
 * the Ewma it measures the daemon's speed with, and its pipeline constants
 * (`web/controllers/stream-controller.js`), so a simulated session runs as the page does.
 */
async function loadPlayer(abrDir) {
  const base = abrDir ? pathToFileURL(abrDir.endsWith('/') ? abrDir : `${abrDir}/`) : DEFAULT_ABR_DIR;
  const { createAbr, ThroughputEstimator } = await import(new URL('index.js', base));
  const { Ewma } = await import(new URL('ewma.js', base));
  const stream = await import(new URL('../controllers/stream-controller.js', base));
  const player = {
    maxBufferS: stream.MAX_BUFFER_S,
    lookaheadChunks: stream.ABR_HORIZON,
    downloadHistory: stream.DOWNLOAD_HISTORY,
    maxChunksAtDaemon: stream.MAX_CHUNKS_AT_DAEMON,
  };
  const newDaemonFps = () => new Ewma(stream.DAEMON_FPS_HALF_LIFE_S);
  return { createAbr, ThroughputEstimator, player, newDaemonFps };
}

async function main() {
  const jobPath = process.argv[2];
  if (!jobPath) throw new Error('usage: node run.mjs JOB.json');
  const job = JSON.parse(readFileSync(jobPath, 'utf8'));
  const { createAbr, ThroughputEstimator, player, newDaemonFps } = await loadPlayer(job.abrDir);
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
        daemonFps: newDaemonFps(),
        random,
        player,
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

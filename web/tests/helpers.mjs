// Hand-built ABR contexts shared by the ABR tests: 4 levels doubling in bitrate, 2 s chunks.
export const KBPS = [100, 200, 400, 800];
export const BYTES = KBPS.map((k) => (k * 1000 * 2) / 8); // one 2 s chunk: 25000 ... 200000 B
export const QUALITY_DB = [10, 12, 14, 15];

export function options(bytes = BYTES, quality = QUALITY_DB) {
  return bytes.map((b, i) => ({ bytes: b, quality: quality[i] }));
}

/** A context with sensible defaults; `overrides` replace fields. */
export function context(overrides = {}) {
  return {
    nowS: 100,
    bufferS: 5,
    maxBufferS: 15,
    chunkDurationS: 2,
    chunkFrames: 60,
    fps: 30,
    levels: KBPS.map((kbps, id) => ({ id, kbps })),
    upcoming: [options(), options(), options(), options(), options()],
    lastLevel: null,
    lastQuality: null,
    throughputKbps: null,
    downloads: [],
    daemonFps: null,
    rebuffering: false,
    ...overrides,
  };
}

/** `n` identical transfers of `bytes` each taking `seconds`, ending 1 s apart before nowS 100. */
export function downloads(n, bytes, seconds) {
  return Array.from({ length: n }, (_, i) => ({ bytes, seconds, endS: 100 - (n - i) }));
}

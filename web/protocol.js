/**
 * The wire protocol as the page speaks it (spec: docs/protocol.md; wire/ is the
 * reference implementation). Pure: builds messages and parses frames, no sockets.
 *
 * Binary frame = 4-byte big-endian header length L + L bytes of UTF-8 JSON (with "type") + payload.
 */

export const PROTOCOL_VERSION = 1;
export const MAX_HEADER_BYTES = 4096; // bytes, JSON header of a binary message
export const MAX_MEDIA_PAYLOAD_BYTES = 32 * 1024 * 1024; // bytes, fMP4 init/segment from the daemon
export const MAX_CHUNK_PAYLOAD_BYTES = 32 * 1024 * 1024; // bytes, prefix + chunk from the server
export const MAX_MANIFEST_CHARS = 8 * 1024 * 1024; // characters, a `manifest` text message
export const MAX_CONTROL_CHARS = 16 * 1024; // characters, any other text message

/** Error codes of `error` messages on both links (wire/errors.py ErrorCode; the golden test keeps them equal). */
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: 'bad_message',
  UNKNOWN_TYPE: 'unknown_type',
  BAD_FIELD: 'bad_field',
  MESSAGE_TOO_LARGE: 'message_too_large',
  UNSUPPORTED_VERSION: 'unsupported_version',
  HELLO_REQUIRED: 'hello_required',
  UNKNOWN_CHANNEL: 'unknown_channel',
  UNKNOWN_LEVEL: 'unknown_level',
  UNKNOWN_CHUNK: 'unknown_chunk',
  NOT_AVAILABLE: 'not_available',
  BEYOND_LIVE_EDGE: 'beyond_live_edge',
  OUTSIDE_WINDOW: 'outside_window',
  GAP: 'gap',
  RATE_LIMITED: 'rate_limited',
  SERVER_FULL: 'server_full',
  IDLE_TIMEOUT: 'idle_timeout',
  GOING_AWAY: 'going_away',
  MEDIA_UNREADABLE: 'media_unreadable',
  INTERNAL: 'internal',
  FORBIDDEN_ORIGIN: 'forbidden_origin',
  OPEN_REQUIRED: 'open_required',
  GENERATOR_MISMATCH: 'generator_mismatch',
  BAD_CHUNK: 'bad_chunk',
  BUSY: 'busy',
  GENERATION_FAILED: 'generation_failed',
});

/** Codes after which the sender closes the connection, with its WebSocket close code. */
export const CLOSE_CODES = Object.freeze({
  [ErrorCode.UNSUPPORTED_VERSION]: 1002,
  [ErrorCode.SERVER_FULL]: 1013,
  [ErrorCode.IDLE_TIMEOUT]: 1000,
  [ErrorCode.GOING_AWAY]: 1001,
  [ErrorCode.FORBIDDEN_ORIGIN]: 1008,
});

/** A malformed message from a peer (the message names the defect). */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Header + payload -> one binary frame (Uint8Array). */
export function encodeBinary(header, payload = new Uint8Array(0)) {
  const headerBytes = encoder.encode(JSON.stringify(header));
  if (headerBytes.length > MAX_HEADER_BYTES) {
    throw new ProtocolError(`binary header of ${headerBytes.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  }
  const body = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
  const frame = new Uint8Array(4 + headerBytes.length + body.length);
  new DataView(frame.buffer).setUint32(0, headerBytes.length, false);
  frame.set(headerBytes, 4);
  frame.set(body, 4 + headerBytes.length);
  return frame;
}

/**
 * One binary frame -> {header, payload} (payload is a view into `buffer`, no copy).
 * @param {ArrayBuffer} buffer
 * @param {number} maxPayloadBytes
 */
export function decodeBinary(buffer, maxPayloadBytes) {
  if (buffer.byteLength < 4) throw new ProtocolError(`binary message of ${buffer.byteLength} bytes has no header length`);
  const headerLength = new DataView(buffer).getUint32(0, false);
  if (headerLength > MAX_HEADER_BYTES) throw new ProtocolError(`binary header length ${headerLength} exceeds ${MAX_HEADER_BYTES}`);
  if (4 + headerLength > buffer.byteLength) {
    throw new ProtocolError(`binary header of ${headerLength} bytes runs past the end of a ${buffer.byteLength}-byte message`);
  }
  let header;
  try {
    header = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, headerLength)));
  } catch (error) {
    throw new ProtocolError(`binary header is not UTF-8 JSON: ${error.message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header) || typeof header.type !== 'string') {
    throw new ProtocolError('binary header must be a JSON object with a string "type"');
  }
  const payload = new Uint8Array(buffer, 4 + headerLength);
  if (payload.length > maxPayloadBytes) {
    throw new ProtocolError(`'${header.type}' payload of ${payload.length} bytes exceeds ${maxPayloadBytes}`);
  }
  return { header, payload };
}

/** A JSON text frame -> object with a string `type`. */
export function decodeControl(text, maxChars = MAX_MANIFEST_CHARS) {
  if (text.length > maxChars) throw new ProtocolError(`text message of ${text.length} characters exceeds ${maxChars}`);
  let message;
  try {
    message = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError(`text message is not JSON: ${error.message}`);
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.type !== 'string') {
    throw new ProtocolError('text message must be a JSON object with a string "type"');
  }
  return message;
}

/**
 * Whether prompt-chunk bytes say "closed" in their header (format version 2, flag bit 1): the
 * chunk holds its own first keyframe, so it decodes without a switch prefix and the server sends
 * none (prompts/chunk.py is_closed_chunk).
 */
export function isClosedChunk(bytes) {
  const magic = [0x50, 0x52, 0x4d, 0x43]; // "PRMC"
  return bytes.length >= 8 && magic.every((byte, i) => bytes[i] === byte) && bytes[4] === 2 && (bytes[5] & 0x02) !== 0;
}

/** Checks a `chunk` header against its payload (sizes must add up exactly). */
export function checkChunkHeader(header, payloadLength) {
  for (const key of ['chunk', 'level', 'prefix_bytes', 'chunk_bytes']) {
    if (!Number.isInteger(header[key]) || header[key] < 0) throw new ProtocolError(`chunk header field '${key}' must be an integer >= 0`);
  }
  if (header.prefix_bytes + header.chunk_bytes !== payloadLength) {
    throw new ProtocolError(
      `chunk header announces ${header.prefix_bytes} + ${header.chunk_bytes} bytes, payload has ${payloadLength}`,
    );
  }
}

// --- messages the page sends -------------------------------------------------------------

export const hello = (channel, abr, userAgent) =>
  JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, channel, abr, user_agent: userAgent });
export const get = (chunk, level, prefix) => JSON.stringify({ type: 'get', chunk, level, prefix });
export const ack = (chunk, level) => JSON.stringify({ type: 'ack', chunk, level });
export const seek = (chunk) => JSON.stringify({ type: 'seek', chunk });

/** `stats` text; `fields` holds buffer_s, stalls, stall_s, level, ... (non-finite numbers become null). */
export function stats(fields) {
  const clean = {};
  for (const [key, value] of Object.entries(fields)) {
    clean[key] = typeof value === 'number' && !Number.isFinite(value) ? null : value;
  }
  return JSON.stringify({ type: 'stats', ...clean });
}

/** The daemon's `stream` object for a manifest (mirrors StreamSetup.from_manifest). */
export function streamSetup(manifest) {
  return {
    generator_id: manifest.generator.id,
    width: manifest.width,
    height: manifest.height,
    fps: manifest.fps,
    noise_seed: manifest.noise_seed,
    prev_latent_weight: manifest.prev_latent_weight,
    prev_latent_rule: manifest.prev_latent_rule,
    chunk_frames: manifest.chunk_frames,
  };
}

/** Binary `open` frame: stream setup + the channel's init.bin bytes. */
export function open(manifest, initState, session) {
  const header = { type: 'open', version: PROTOCOL_VERSION, stream: streamSetup(manifest) };
  if (session) header.session = session;
  return encodeBinary(header, initState);
}

// The golden messages of both links (tests/wire/golden/messages.json, written from the Python
// reference wire/ by scripts/write_protocol_golden.py): what the page sends it must build byte for
// byte, what it receives it must decode and re-encode unchanged. tests/wire/test_golden.py checks
// the same file against Python, so a drift on either side fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as protocol from '../protocol.js';

const golden = JSON.parse(readFileSync(new URL('../../tests/wire/golden/messages.json', import.meta.url), 'utf8'));

function wire(entry) {
  return entry.frame === 'text' ? entry.text : new Uint8Array(Buffer.from(entry.base64, 'base64'));
}

function example(link, from, name) {
  const entry = golden.messages.find((e) => e.link === link && e.from === from && e.name === name);
  assert.ok(entry, `golden has no ${name} from ${from} on the ${link} link`);
  return wire(entry);
}

function binary(bytes) {
  const { header, payload } = protocol.decodeBinary(bytes.buffer, Infinity);
  return { header, payload };
}

test('error codes, close codes, version and limits are the reference ones', () => {
  assert.deepEqual(Object.values(protocol.ErrorCode), golden.error_codes);
  assert.deepEqual({ ...protocol.CLOSE_CODES }, golden.close_codes);
  assert.equal(protocol.PROTOCOL_VERSION, golden.protocol_version);
  assert.equal(protocol.MAX_HEADER_BYTES, golden.limits.max_header_bytes);
  assert.equal(protocol.MAX_CONTROL_CHARS, golden.limits.max_control_bytes);
  assert.equal(protocol.MAX_MANIFEST_CHARS, golden.limits.max_manifest_message_bytes);
  assert.equal(protocol.MAX_CHUNK_PAYLOAD_BYTES, golden.limits.max_chunk_payload_bytes);
  assert.equal(protocol.MAX_MEDIA_PAYLOAD_BYTES, golden.limits.max_media_payload_bytes);
});

test('the page builds hello, get, ack and seek byte for byte', () => {
  const hello = JSON.parse(example('media', 'page', 'hello'));
  assert.equal(protocol.hello(hello.channel, hello.abr, hello.user_agent), example('media', 'page', 'hello'));
  const get = JSON.parse(example('media', 'page', 'get'));
  assert.equal(protocol.get(get.chunk, get.level, get.prefix), example('media', 'page', 'get'));
  const ack = JSON.parse(example('media', 'page', 'ack'));
  assert.equal(protocol.ack(ack.chunk, ack.level), example('media', 'page', 'ack'));
  const seek = JSON.parse(example('daemon', 'page', 'seek'));
  assert.equal(protocol.seek(seek.chunk), example('daemon', 'page', 'seek'));
});

test('the page builds stats with the same fields and values', () => {
  const golden_stats = JSON.parse(example('media', 'page', 'stats'));
  const { type, ...fields } = golden_stats;
  assert.equal(type, 'stats');
  assert.deepEqual(JSON.parse(protocol.stats(fields)), golden_stats);
});

test('the page builds open byte for byte from the manifest and init.bin', () => {
  const manifest = JSON.parse(example('media', 'server', 'manifest')).manifest;
  const golden_open = binary(example('daemon', 'page', 'open'));
  const built = protocol.open(manifest, golden_open.payload, golden_open.header.session);
  assert.deepEqual([...built], [...example('daemon', 'page', 'open')]);
});

test('the page decodes every message it receives and re-encodes it unchanged', () => {
  for (const entry of golden.messages.filter((e) => e.from !== 'page')) {
    const bytes = wire(entry);
    if (entry.frame === 'text') {
      const message = protocol.decodeControl(bytes);
      assert.equal(message.type, entry.name);
      assert.equal(JSON.stringify(message), bytes);
      if (message.type === 'error') assert.ok(golden.error_codes.includes(message.code));
    } else {
      const { header, payload } = binary(bytes);
      assert.equal(header.type, entry.name);
      if (header.type === 'chunk') protocol.checkChunkHeader(header, payload.length);
      assert.deepEqual([...protocol.encodeBinary(header, payload)], [...bytes]);
    }
  }
});

test('a chunk the page forwards to the daemon is the server chunk message unchanged', () => {
  const forwarded = binary(example('daemon', 'page', 'chunk'));
  protocol.checkChunkHeader(forwarded.header, forwarded.payload.length);
  assert.deepEqual([...protocol.encodeBinary(forwarded.header, forwarded.payload)], [...example('daemon', 'page', 'chunk')]);
});

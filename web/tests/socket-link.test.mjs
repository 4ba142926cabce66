// Reconnect with backoff, against a fake WebSocket and Node's mock timers.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { SocketLink } from '../controllers/socket-link.js';

class FakeSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }
  send(data) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

test('retries after 0.5, 1, 2 s while refused; a healthy link starts the backoff over', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  FakeSocket.made = [];
  const closes = [];
  const link = new SocketLink({
    url: 'ws://127.0.0.1:9',
    WebSocketImpl: FakeSocket,
    onOpen: () => {},
    onText: () => {},
    onBinary: () => {},
    onClose: (info) => closes.push(info),
  });
  link.start();
  FakeSocket.made[0].drop();
  assert.deepEqual(closes.map((c) => [c.everOpened, c.retryInMs]), [[false, 500]]);
  mock.timers.tick(499);
  assert.equal(FakeSocket.made.length, 1);
  mock.timers.tick(1);
  assert.equal(FakeSocket.made.length, 2);
  FakeSocket.made[1].drop();
  mock.timers.tick(1000);
  FakeSocket.made[2].open();
  assert.ok(link.send('hi'));
  link.markHealthy();
  FakeSocket.made[2].drop(1001);
  assert.deepEqual(closes.at(-1), { code: 1001, reason: '', everOpened: true, retryInMs: 500 });
  assert.equal(link.send('lost'), false);
  link.stop();
  mock.timers.tick(10_000);
  assert.equal(FakeSocket.made.length, 3); // stopped: no more attempts
  mock.timers.reset();
});

test('text frames and binary frames go to their handlers', () => {
  FakeSocket.made = [];
  const got = [];
  const link = new SocketLink({
    url: 'ws://x',
    WebSocketImpl: FakeSocket,
    onOpen: () => got.push('open'),
    onText: (t) => got.push(`text ${t}`),
    onBinary: (b) => got.push(`binary ${b.byteLength}`),
    onClose: () => {},
  });
  link.start();
  const socket = FakeSocket.made[0];
  assert.equal(socket.binaryType, 'arraybuffer');
  socket.open();
  socket.onmessage({ data: '{"type":"x"}' });
  socket.onmessage({ data: new ArrayBuffer(3) });
  assert.deepEqual(got, ['open', 'text {"type":"x"}', 'binary 3']);
  link.stop();
});

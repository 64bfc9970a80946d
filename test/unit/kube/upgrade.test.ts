// One hop of exec's path, on real sockets over loopback: a client's upgrade request goes on to the
// next server, whose 101 joins the two connections byte for byte, and whose refusal comes back.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HttpError } from '../../../src/kube/streaming.js';
import { joinUpgrade, refuseUpgrade, upgradeHeaders } from '../../../src/kube/upgrade.js';

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Upgraded sockets leave their server's books: closed by hand at the end. */
const open = new Set<Duplex>();

/** The next hop: echoes what it gets in upper case after a 101, or refuses /refused. */
const next = http.createServer((_req, res) => res.writeHead(404).end());
next.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
  open.add(socket);
  if (req.url === '/refused') {
    refuseUpgrade(socket, new HttpError(403, 'not you'));
    return;
  }
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Protocol: ${req.headers['sec-websocket-protocol']}\r\n\r\n`,
  );
  socket.on('data', (d: Buffer) => socket.write(String(d).toUpperCase()));
});

/** The hop under test: passes every upgrade on to `next`, at the same path. */
const hop = http.createServer();
let nextPort = 0;
hop.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
  open.add(socket);
  const upstream = http.request({
    port: nextPort,
    host: '127.0.0.1',
    path: req.url,
    headers: upgradeHeaders(req),
  });
  void joinUpgrade(socket, head, upstream, (e) => new HttpError(502, `next hop: ${e.message}`));
});

/** A raw upgrade request to the hop; resolves with everything read until `until` matches. */
function raw(port: number, path: string, send: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('connect', () =>
      s.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n` +
          `X-Not-Passed: secret\r\n\r\n${send}`,
      ),
    );
    s.on('data', (d) => {
      got += String(d);
      if (until.test(got)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

describe('joinUpgrade', () => {
  let hopPort = 0;
  before(async () => {
    nextPort = await listen(next);
    hopPort = await listen(hop);
  });
  after(() => {
    for (const s of open) s.destroy();
    next.closeAllConnections();
    hop.closeAllConnections();
    next.close();
    hop.close();
  });

  it('relays the 101 with the negotiated protocol and joins the sockets, bytes sent with the request included', async () => {
    const got = await raw(hopPort, '/exec', 'hello', /HELLO/);
    assert.match(got, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(got, /Sec-WebSocket-Protocol: v4\.channel\.k8s\.io\r\n/);
    assert.match(got, /\r\n\r\nHELLO$/);
  });

  it("passes on the next hop's refusal with its code and Status", async () => {
    const got = await raw(hopPort, '/refused', '', /"code":403}$/);
    assert.match(got, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(got, /"message":"not you"/);
  });

  it('says so when the next hop cannot be reached', async () => {
    const port = nextPort;
    nextPort = 1; // nothing listens there
    try {
      const got = await raw(hopPort, '/exec', '', /"code":502}$/);
      assert.match(got, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
      assert.match(got, /"message":"next hop: connect ECONNREFUSED/);
    } finally {
      nextPort = port;
    }
  });

  it('passes only the handshake headers on', () => {
    const req = { headers: { upgrade: 'websocket', 'sec-websocket-key': 'k', authorization: 'Bearer t' } };
    assert.deepEqual(upgradeHeaders(req as unknown as http.IncomingMessage), {
      upgrade: 'websocket',
      'sec-websocket-key': 'k',
    });
  });
});

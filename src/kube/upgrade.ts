// Passing an upgraded connection (exec's WebSocket) on, hop by hop: the aggregated server to the
// agent, the agent to the runtime's streaming server. Each hop forwards the handshake, relays the
// next hop's answer, and after a 101 joins the two sockets byte for byte, as the kubelet and the
// apiserver proxy exec. So the client and the runtime negotiate the channel protocol themselves,
// and nothing in between reads the frames.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { failure, statusBody } from './streaming.js';

/** The request headers of a WebSocket handshake, the ones the next hop needs. */
const handshakeHeaders = [
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
];

export function upgradeHeaders(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of handshakeHeaders) {
    const v = req.headers[h];
    if (v !== undefined) out[h] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** The HTTP head of a response, as written on a raw socket. */
function head(statusCode: number, statusMessage: string, rawHeaders: string[]): string {
  const lines = [`HTTP/1.1 ${statusCode} ${statusMessage}`];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i]}: ${rawHeaders[i + 1]}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Answers an upgrade request without upgrading (a raw socket has no ServerResponse). */
function answer(socket: Duplex, code: number, contentType: string, body: Buffer | string): void {
  socket.write(
    head(code, http.STATUS_CODES[code] ?? '', [
      'Content-Type',
      contentType,
      'Content-Length',
      String(Buffer.byteLength(body)),
      'Connection',
      'close',
    ]),
  );
  socket.end(body);
}

/** Refuses an upgrade request with a metav1.Status saying why (the client never gets its 101). */
export function refuseUpgrade(socket: Duplex, err: unknown): void {
  const { code, message } = failure(err);
  answer(socket, code, 'application/json', statusBody(code, message));
}

/**
 * Sends `upstream` (an upgrade request to the next hop, not yet ended) and joins the client's
 * socket to the next hop's once it switches protocols; a refusal there goes back as it came.
 * Resolves when both sides are closed.
 */
export function joinUpgrade(
  client: Duplex,
  clientHead: Buffer,
  upstream: http.ClientRequest,
  describeFailure: (e: Error) => Error,
): Promise<void> {
  return new Promise((resolve) => {
    client.on('error', () => client.destroy());
    // A client gone before the next hop answers takes the request with it.
    const abandon = () => upstream.destroy();
    client.once('close', abandon);
    upstream.on('upgrade', (res: http.IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
      client.off('close', abandon);
      if (client.destroyed) {
        socket.destroy();
        resolve();
        return;
      }
      client.write(head(101, res.statusMessage ?? 'Switching Protocols', res.rawHeaders));
      if (upstreamHead.length) client.write(upstreamHead);
      if (clientHead.length) socket.write(clientHead);
      socket.on('error', () => socket.destroy());
      // Either side closing closes the other: a finished command ends the client's session.
      socket.on('close', () => client.destroy());
      client.on('close', () => {
        socket.destroy();
        resolve();
      });
      socket.pipe(client);
      client.pipe(socket);
    });
    // A refusal (the next hop's Status) is short: read whole, answered with its code.
    upstream.on('response', (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        answer(
          client,
          res.statusCode ?? 502,
          res.headers['content-type'] ?? 'text/plain',
          Buffer.concat(chunks),
        );
        resolve();
      });
    });
    upstream.on('error', (e) => {
      refuseUpgrade(client, describeFailure(e));
      resolve();
    });
    upstream.end();
  });
}

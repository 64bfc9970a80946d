// `kubectl gantry exec`: a command in a running container, as `docker exec` and `kubectl exec`
// run one. A WebSocket to Gantry's aggregated API (containers/exec, which RBAC grants as it grants
// pods/exec), passed on by the apiserver, Gantry's server and the Container's agent to the
// runtime's streaming server, which speaks channel.k8s.io v4: each binary message starts with its
// channel (0 stdin, 1 stdout, 2 stderr, 3 the command's end as a metav1.Status, 4 terminal size).
import type http from 'node:http';
import type https from 'node:https';
import { ApiException } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { execQuery } from '../kube/streaming.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';

const protocol = 'v4.channel.k8s.io';
export const channel = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4 } as const;

interface ExecStatus {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string; message?: string }[] };
}

/** The command's exit code from its end Status; a failure to run it at all is an error. */
export function exitCodeOf(s: ExecStatus): number {
  if (s.status === 'Success') return 0;
  const cause = s.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (s.reason === 'NonZeroExitCode' && cause?.message && /^\d+$/.test(cause.message))
    return Number(cause.message);
  throw new CliError(s.message ?? 'the command failed');
}

/** One message on a channel. */
export function frame(ch: number, data: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from([ch]), Buffer.from(data)]);
}

/** A refusal before the upgrade (the Status the servers answered), as kubectl reports it. */
function refusal(res: http.IncomingMessage): Promise<ApiException<string>> {
  return new Promise((resolve) => {
    let body = '';
    res.on('data', (d) => (body += String(d)));
    res.on('end', () =>
      resolve(new ApiException(res.statusCode ?? 500, 'exec refused', body, res.headers as never)),
    );
  });
}

export const exec: Command = {
  name: 'exec',
  summary: 'Run a command in a running container',
  usage: '[-i] [-t] NAME -- COMMAND [ARG...]',
  description:
    'Run COMMAND in the running Container NAME, wherever it runs, and exit with its exit code. ' +
    '-i passes standard input on, -t gives the command a terminal. Whoever may create ' +
    'containers/exec in the namespace may do this (the `edit` role).',
  examples: ['kubectl gantry exec web -- ls /', 'kubectl gantry exec -it web -- sh'],
  options: {
    stdin: { type: 'boolean', short: 'i' },
    tty: { type: 'boolean', short: 't' },
  },
  async run(ctx: Context) {
    const [name, ...command] = ctx.positionals;
    if (!name) throw usageError(exec, 'a container name is required');
    if (command.length === 0) throw usageError(exec, 'a command is required (after --)');
    const stdin = ctx.values.stdin === true;
    let tty = ctx.values.tty === true;
    if (tty && !process.stdin.isTTY) {
      process.stderr.write('Unable to use a TTY - input is not a terminal or the right kind of file\n');
      tty = false;
    }
    const cluster = ctx.cluster();
    const query = execQuery({ command, stdin, stdout: true, stderr: !tty, tty });
    const path = cluster.subresourcePath(
      `namespaces/${encodeURIComponent(cluster.namespace)}/containers/${encodeURIComponent(name)}/exec?${query}`,
    );
    const server = cluster.kc.getCurrentCluster()!.server.replace(/^http/, 'ws');
    const tls: https.RequestOptions = {};
    await cluster.kc.applyToHTTPSOptions(tls);
    const ws = new WebSocket(`${server}${path}`, [protocol], tls as WebSocket.ClientOptions);
    return session(ws, { stdin, tty });
  },
};

/** Runs the session to its end: resolves with the exit code, rejects with what went wrong. */
function session(ws: WebSocket, o: { stdin: boolean; tty: boolean }): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let status: ExecStatus | undefined;
    const input = process.stdin;
    // Keys go to the command only with -i: without it, Ctrl-C must still stop this process.
    const raw = o.tty && o.stdin;
    const resize = () =>
      ws.send(
        frame(channel.resize, JSON.stringify({ Width: process.stdout.columns, Height: process.stdout.rows })),
      );
    const cleanUp = () => {
      if (raw) input.setRawMode(false);
      input.pause();
      process.stdout.off('resize', resize);
    };
    ws.on('unexpected-response', (_req, res) => void refusal(res).then(reject));
    ws.on('error', (e) => reject(e));
    ws.on('open', () => {
      if (raw) input.setRawMode(true);
      if (o.tty && process.stdout.isTTY) {
        resize();
        process.stdout.on('resize', resize);
      }
      if (o.stdin) input.on('data', (d: Buffer) => ws.send(frame(channel.stdin, d)));
    });
    ws.on('message', (data: Buffer) => {
      const body = data.subarray(1);
      if (data[0] === channel.stdout) process.stdout.write(body);
      else if (data[0] === channel.stderr) process.stderr.write(body);
      else if (data[0] === channel.status) status = JSON.parse(String(body)) as ExecStatus;
    });
    ws.on('close', () => {
      cleanUp();
      if (!status) reject(new CliError('the connection closed before the command ended'));
      else {
        try {
          resolve(exitCodeOf(status));
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

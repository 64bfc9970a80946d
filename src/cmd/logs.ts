// `npm run logs -- <namespace>/<name> [--tail N] [--previous] [--follow] [--timestamps]`
// Prints a Container's output from the agent's log files on this machine. On a cluster, run it
// where the container runs, inside that host's agent pod:
//   kubectl exec -n gantry-system <agent pod on the host> -- node dist/cmd/logs.js <ns>/<name>
// so reading logs is governed by the same RBAC as `kubectl exec`.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { attemptLogFile, findContainerLogs, parseCriLog, type LogLine } from '../agent/logs.js';
import { agentStateDir } from '../localcluster/gantry.js';
import { readLocalCluster } from '../localcluster/state.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tail: { type: 'string' },
    previous: { type: 'boolean', default: false },
    follow: { type: 'boolean', short: 'f', default: false },
    timestamps: { type: 'boolean', default: false },
    'state-dir': { type: 'string', multiple: true },
  },
});

function fail(message: string): never {
  console.error(`gantry logs: ${message}`);
  process.exit(1);
}

/** The agents' state directories on this machine: given, the local cluster's hosts', or the default. */
function stateDirs(): string[] {
  if (values['state-dir']?.length) return values['state-dir'];
  const local = readLocalCluster();
  if (local) return local.hosts.map((h) => agentStateDir(h.name));
  return [process.env.GANTRY_AGENT_STATE_DIR ?? '/var/lib/gantry/agent'];
}

function print(lines: LogLine[]): void {
  for (const l of lines) {
    const text = values.timestamps ? `${l.time} ${l.text}` : l.text;
    (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${text}\n`);
  }
}

async function follow(file: string, from: number): Promise<never> {
  let offset = from;
  let pending = '';
  for (;;) {
    const size = fs.statSync(file).size;
    if (size > offset) {
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(size - offset);
      fs.readSync(fd, buf, 0, buf.length, offset);
      fs.closeSync(fd);
      offset = size;
      const text = pending + buf.toString('utf8');
      const cut = text.lastIndexOf('\n') + 1;
      print(parseCriLog(text.slice(0, cut)));
      pending = text.slice(cut);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const target = positionals[0];
  const [namespace, name] = target?.includes('/') ? target.split('/', 2) : ['default', target];
  if (!name) fail('usage: logs <namespace>/<name> [--tail N] [--previous] [--follow] [--timestamps]');
  const dirs = stateDirs();
  const logs = findContainerLogs(dirs, namespace!, name);
  if (!logs || logs.attempts.length === 0) {
    fail(
      `no logs of Container ${namespace}/${name} on this machine (looked in ${dirs.join(', ')}); ` +
        'run this on the host the Container runs on (kubectl get ctr shows HOST)',
    );
  }
  const index = logs.attempts.length - (values.previous ? 2 : 1);
  if (index < 0) fail(`Container ${namespace}/${name} has not restarted: there is no previous run`);
  const file = attemptLogFile(logs, logs.attempts[index]!);
  const content = fs.readFileSync(file, 'utf8');
  const lines = parseCriLog(content);
  const tail = values.tail !== undefined ? Number(values.tail) : undefined;
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) fail('--tail must be a whole number');
  print(tail !== undefined ? lines.slice(Math.max(0, lines.length - tail)) : lines);
  if (values.follow) await follow(file, Buffer.byteLength(content));
}

await main();

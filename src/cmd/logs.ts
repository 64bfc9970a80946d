// `npm run logs -- <namespace>/<name> [--tail N] [--previous] [--follow] [--timestamps]`
// Prints a Container's output from the agent's log files on this machine. On a cluster, run it
// where the container runs, inside that host's agent pod:
//   kubectl exec -n gantry-system <agent pod on the host> -- node dist/cmd/logs.js <ns>/<name>
// so reading logs is governed by the same RBAC as `kubectl exec`.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import {
  attemptLogFiles,
  findContainerLogs,
  parseCriLog,
  readLogFiles,
  type LogLine,
} from '../agent/logs.js';
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

/** Prints what is appended to `file` from `from` on; after a rotation, the rest of the old file, then the new one. */
async function follow(file: string, from: number): Promise<never> {
  let fd = fs.openSync(file, 'r');
  let offset = from;
  let pending = '';
  const drain = () => {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return;
    const buf = Buffer.alloc(size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    offset = size;
    const text = pending + buf.toString('utf8');
    const cut = text.lastIndexOf('\n') + 1;
    print(parseCriLog(text.slice(0, cut)));
    pending = text.slice(cut);
  };
  for (;;) {
    drain();
    const replaced = fs.existsSync(file) && fs.statSync(file).ino !== fs.fstatSync(fd).ino;
    if (replaced) {
      drain();
      fs.closeSync(fd);
      fd = fs.openSync(file, 'r');
      offset = 0;
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
  const tail = values.tail !== undefined ? Number(values.tail) : undefined;
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) fail('--tail must be a whole number');
  const files = attemptLogFiles(logs, logs.attempts[index]!);
  const { lines, currentBytes } = readLogFiles(files, tail);
  print(lines);
  if (values.follow) await follow(files[files.length - 1]!, currentBytes);
}

await main();

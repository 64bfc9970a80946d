// The Builds bound to this host, run through BuildKit (buildctl against the buildkitd at
// --buildkit-socket) and reported on their status. Each run works in a directory of its own under
// the state directory, named by the Build's UID: the context's files, the build secrets' files
// (mode 0600, gone with the directory), buildctl's output, its PID and exit code, and its metadata
// file (the pushed digest).
//  - A Build runs at most once at a time: the work queue never hands one key to two workers, and
//    buildctl's output goes to a file, not to this process, so a buildctl left running by an
//    agent that stopped is waited for and its result taken, not started again beside it.
//  - An agent that stopped between buildctl's end and the status write finds the exit code and
//    the metadata in the directory and reports them.
//  - A run that never finished (the machine restarted) runs again: the inputs are the same and a
//    push of the same image is idempotent; status.attempts counts the runs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Build, BuildStatus } from '../api/v1alpha1/index.js';
import { realClock, sleep, type Clock } from '../kube/clock.js';
import { metaTime, progressOf, setCondition, setProgress } from '../kube/conditions.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../kube/controller.js';
import type { CustomResourceClient } from '../kube/customresource.js';
import { isNotFound } from '../kube/errors.js';
import type { SecretReader } from '../kube/pullsecrets.js';
import type { Cache } from '../kube/store.js';
import { buildctlArgs, metadataDigest, parseFailure, type BuildFiles } from './buildctl.js';

export interface BuildRunnerOptions {
  fieldManager: string;
  /** unix:///path/to/buildkitd.sock */
  buildkitAddress: string;
  buildctl: string;
  /** Runs' directories go under it. */
  workDir: string;
}

export interface BuildRunnerDeps {
  cache: Cache<Build>;
  api: Pick<CustomResourceClient<Build>, 'applyStatus'>;
  readSecret: SecretReader;
  clock?: Clock;
}

/** What a finished buildctl left: its exit code (unknown for one this process did not start) and files. */
interface Outcome {
  exitCode?: number;
  output: string;
  metadata: string;
}

export class BuildRunner implements Reconciler {
  private readonly clock: Clock;
  /**
   * UIDs of the Builds whose result this agent wrote and whose cache entry has not shown it yet:
   * until the watch delivers it, the cache still says Running (our own earlier write), and taking
   * that at its word would run the build again.
   */
  private readonly reported = new Set<string>();

  constructor(
    private readonly opts: BuildRunnerOptions,
    private readonly deps: BuildRunnerDeps,
  ) {
    this.clock = deps.clock ?? realClock;
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const build = this.deps.cache.get(key);
    if (!build) return;
    const uid = build.metadata.uid!;
    const dir = path.join(this.opts.workDir, uid);
    const phase = build.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      this.reported.delete(uid);
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    }
    if (this.reported.has(uid)) return; // a stale cache entry: the result's watch event follows
    const files = runFiles(dir);
    let outcome: Outcome;
    let previous = build.status ?? {};
    const orphan = runningBuildctl(files);
    if (orphan !== undefined) {
      ctx.log.info('Waiting for the buildctl an earlier agent started', { build: key, pid: orphan });
      while (runningBuildctl(files) !== undefined) {
        if (ctx.signal.aborted) return; // stopping: the next agent waits for it in turn
        await sleep(this.clock, 1000, ctx.signal);
      }
      outcome = readOutcome(files);
    } else if (fs.existsSync(files.exitCode)) {
      outcome = readOutcome(files);
    } else {
      const missing = await this.prepare(build, dir, files);
      if (missing) {
        fs.rmSync(dir, { recursive: true, force: true }); // the secrets read so far
        await this.report(build, previous, { phase: 'Pending', message: missing });
        return { requeueAfter: 30_000 };
      }
      previous = await this.report(build, previous, {
        phase: 'Running',
        startedAt: metaTime(new Date(this.clock.now())),
        attempts: (build.status?.attempts ?? 0) + 1,
      });
      ctx.log.info('Building', { build: key, image: build.spec.image });
      outcome = await this.run(build, files);
    }
    // The secrets' files go first; the rest stays until the result is reported.
    fs.rmSync(files.secretsDir, { recursive: true, force: true });
    try {
      await this.report(build, previous, result(outcome, new Date(this.clock.now())));
      this.reported.add(uid);
      ctx.log.info('Build ended', { build: key, exitCode: outcome.exitCode });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      ctx.log.info('Build deleted while it ran', { build: key }); // superseded, or its Image is gone
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Writes the context and the secrets' files; what is missing, if a secret is. */
  private async prepare(build: Build, dir: string, files: RunFiles): Promise<string | undefined> {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(files.context, { recursive: true });
    fs.mkdirSync(files.secretsDir, { recursive: true, mode: 0o700 });
    const { files: text = {}, binaryFiles = {} } = build.spec.context;
    for (const [name, content] of Object.entries(text))
      writeInside(files.context, name, Buffer.from(content));
    for (const [name, base64] of Object.entries(binaryFiles)) {
      writeInside(files.context, name, Buffer.from(base64, 'base64'));
    }
    const namespace = build.metadata.namespace ?? 'default';
    for (const s of build.spec.secrets ?? []) {
      const ref = s.secretKeyRef;
      const secret = await this.deps.readSecret(namespace, ref.name);
      const value = secret?.data?.[ref.key];
      if (value === undefined) {
        return secret
          ? `Build secret ${s.id}: Secret ${namespace}/${ref.name} has no key ${ref.key}`
          : `Build secret ${s.id}: Secret ${namespace}/${ref.name} does not exist (or this agent may not read it)`;
      }
      fs.writeFileSync(path.join(files.secretsDir, s.id), Buffer.from(value, 'base64'), { mode: 0o600 });
    }
    return undefined;
  }

  /** Runs buildctl with its output going to a file, records its PID and then its exit code. */
  private async run(build: Build, files: RunFiles): Promise<Outcome> {
    const paths: BuildFiles = {
      context: files.context,
      secrets: Object.fromEntries(
        (build.spec.secrets ?? []).map((s) => [s.id, path.join(files.secretsDir, s.id)]),
      ),
      metadata: files.metadata,
    };
    const out = fs.openSync(files.output, 'w');
    const exitCode = await new Promise<number>((resolve) => {
      const child = spawn(this.opts.buildctl, buildctlArgs(this.opts.buildkitAddress, build.spec, paths), {
        stdio: ['ignore', out, out],
      });
      if (child.pid !== undefined) fs.writeFileSync(files.pid, String(child.pid));
      child.on('error', (err) => {
        fs.appendFileSync(files.output, `error: running ${this.opts.buildctl}: ${err.message}\n`);
        resolve(127);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    fs.closeSync(out);
    fs.writeFileSync(files.exitCode, String(exitCode));
    fs.rmSync(files.pid, { force: true });
    return readOutcome(files);
  }

  /** Applies `status` over what carries on from `previous` (start time, attempts); what was written. */
  private async report(build: Build, previous: BuildStatus, status: BuildStatus): Promise<BuildStatus> {
    const { name, namespace } = build.metadata;
    const generation = build.metadata.generation;
    const now = new Date(this.clock.now());
    const ready = readyOf(status);
    let conditions = setCondition(
      previous.conditions,
      { type: 'Ready', observedGeneration: generation, ...ready },
      now,
    );
    conditions = setProgress(
      conditions,
      progressOf({ type: 'Ready', ...ready }, new Set(['BuildFailed'])),
      generation,
      now,
    );
    const merged: BuildStatus = {
      observedGeneration: generation,
      ...(previous.startedAt && { startedAt: previous.startedAt }),
      ...(previous.attempts !== undefined && { attempts: previous.attempts }),
      ...status,
      conditions,
    };
    await this.deps.api.applyStatus({ name: name!, namespace }, merged, {
      fieldManager: this.opts.fieldManager,
    });
    return merged;
  }
}

interface RunFiles {
  context: string;
  secretsDir: string;
  output: string;
  metadata: string;
  pid: string;
  exitCode: string;
}

function runFiles(dir: string): RunFiles {
  return {
    context: path.join(dir, 'context'),
    secretsDir: path.join(dir, 'secrets'),
    output: path.join(dir, 'output.log'),
    metadata: path.join(dir, 'metadata.json'),
    pid: path.join(dir, 'buildctl.pid'),
    exitCode: path.join(dir, 'exit-code'),
  };
}

/** A file of the context, refused if its path would leave the context directory (the CRD refuses those too). */
function writeInside(root: string, name: string, content: Buffer): void {
  const file = path.resolve(root, name);
  if (!file.startsWith(root + path.sep)) throw new Error(`context file ${name} is outside the context`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/**
 * The PID in the run's PID file if that process is alive and is this run's buildctl: its command
 * line names this run's metadata file (a PID can be reused by another program).
 */
function runningBuildctl(files: RunFiles): number | undefined {
  try {
    const pid = Number(fs.readFileSync(files.pid, 'utf8').trim());
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(`--metadata-file=${files.metadata}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function readOutcome(files: RunFiles): Outcome {
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  const code = read(files.exitCode).trim();
  return {
    ...(code !== '' && { exitCode: Number(code) }),
    output: read(files.output),
    metadata: read(files.metadata),
  };
}

/** Succeeded with the pushed digest, or Failed with the step, the error and the last lines. */
function result(outcome: Outcome, now: Date): BuildStatus {
  const finishedAt = metaTime(now);
  const digest = metadataDigest(outcome.metadata);
  if (digest && (outcome.exitCode === undefined || outcome.exitCode === 0)) {
    return { phase: 'Succeeded', finishedAt, digest };
  }
  const failure = parseFailure(outcome.output || 'error: buildctl ended without output');
  return {
    phase: 'Failed',
    finishedAt,
    ...(failure.step && { failedStep: failure.step.slice(0, 4096) }),
    message: failure.message.slice(0, 4096),
    logTail: failure.logTail.slice(-16384),
  };
}

/** Ready from the phase: True once pushed; False while waiting or running, and (Stalled) once failed. */
function readyOf(status: BuildStatus): { status: 'True' | 'False'; reason: string; message: string } {
  switch (status.phase) {
    case 'Succeeded':
      return { status: 'True', reason: 'Built', message: `Pushed ${status.digest}` };
    case 'Failed':
      return {
        status: 'False',
        reason: 'BuildFailed',
        message: [status.failedStep, status.message].filter(Boolean).join(': '),
      };
    case 'Running':
      return { status: 'False', reason: 'Building', message: 'buildctl is running' };
    default:
      return { status: 'False', reason: 'Waiting', message: status.message ?? 'Not started yet' };
  }
}

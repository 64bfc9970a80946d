// `kubectl gantry build`: docker build, as an Image built by the cluster. It reads the context
// directory here (leaving out what .dockerignore names), applies an Image whose spec.build carries
// the files inline (text as files, the rest base64 as binaryFiles), and follows the Image's
// current Build to its end: the pushed digest, or the failing step with its last output lines. The
// same inputs again make no new Build: the Image takes the digest of the one that made them.
import fs from 'node:fs';
import path from 'node:path';
import { TextDecoder } from 'node:util';
import { isContextPath, type Build, type Image, type ImageSpecInput } from '../api/v1alpha1/index.js';
import { realClock, sleep } from '../kube/clock.js';
import { getCondition } from '../kube/conditions.js';
import { type Command, type Context, usageError } from './cli.js';
import { CliError } from './client.js';
import { nameFromImage } from './lifecycle.js';
import { parseDuration } from './hosts.js';

/** The field manager of what build applies, so a later build takes its own fields over. */
export const buildFieldManager = 'kubectl-gantry-build';

/**
 * What the apiserver keeps of one object is about 1.5 MiB, and the Build copies the context: the
 * context's files may take 1 MiB (base64 counted for binary files).
 */
export const maxContextBytes = 1024 * 1024;

/** One pattern of a .dockerignore: a path glob, or with "!" an exception to the ones before it. */
interface IgnoreRule {
  negated: boolean;
  pattern: RegExp;
}

/**
 * .dockerignore's lines as Docker reads them: "#" comments, leading and trailing "/" ignored,
 * "*" and "?" within one path segment, "**" across any number of them, "!" re-including; a rule
 * that matches a directory covers what is inside it.
 */
export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    if (negated) line = line.slice(1).trim();
    line = path.posix.normalize(line).replace(/^\/+|\/+$/g, '');
    if (line === '' || line === '.') continue;
    let source = '';
    for (let i = 0; i < line.length; i++) {
      const ch = line[i]!;
      if (ch === '*' && line[i + 1] === '*') {
        // "**/" matches no directory as well as any number of them.
        const slash = line[i + 2] === '/';
        source += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else if (ch === '*') source += '[^/]*';
      else if (ch === '?') source += '[^/]';
      else source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    rules.push({ negated, pattern: new RegExp(`^${source}(?:/.*)?$`) });
  }
  return rules;
}

/** Whether the rules leave out a path of the context (the last rule that matches decides). */
export function isIgnored(rules: readonly IgnoreRule[], relativePath: string): boolean {
  let ignored = false;
  for (const r of rules) if (r.pattern.test(relativePath)) ignored = !r.negated;
  return ignored;
}

export interface ContextFiles {
  files: Record<string, string>;
  binaryFiles: Record<string, string>;
  bytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The files of a context directory, as Image.spec.build takes them inline: UTF-8 text as is, the
 * rest base64. The Dockerfile and .dockerignore are always sent, as docker sends them. Symbolic
 * links, empty directories and file modes are not carried (an Image holds file contents only).
 */
export function readContext(dir: string, dockerfile: string): ContextFiles {
  const ignoreFile = path.join(dir, '.dockerignore');
  const rules = fs.existsSync(ignoreFile) ? parseDockerignore(fs.readFileSync(ignoreFile, 'utf8')) : [];
  const always = new Set([dockerfile, '.dockerignore']);
  const out: ContextFiles = { files: {}, binaryFiles: {}, bytes: 0 };
  const walk = (relative: string) => {
    for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true })) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      if (isIgnored(rules, name) && !always.has(name)) continue;
      if (entry.isDirectory()) {
        walk(name);
        continue;
      }
      if (!entry.isFile()) continue;
      if (!isContextPath(name))
        throw new CliError(`${name}: Gantry cannot carry a file of this name in a build context`);
      const content = fs.readFileSync(path.join(dir, name));
      let text: string | undefined;
      try {
        text = utf8.decode(content);
      } catch {
        text = undefined;
      }
      if (text !== undefined) out.files[name] = text;
      else out.binaryFiles[name] = content.toString('base64');
      out.bytes += text !== undefined ? content.length : Math.ceil(content.length / 3) * 4;
      if (out.bytes > maxContextBytes) {
        throw new CliError(
          `the build context is over ${maxContextBytes / 1024} KiB (at ${name}): leave out what the ` +
            'build does not need in .dockerignore, or build from a git repository',
        );
      }
    }
  };
  walk('');
  if (out.files[dockerfile] === undefined && out.binaryFiles[dockerfile] === undefined) {
    throw new CliError(`the context ${dir} has no ${dockerfile}`);
  }
  return out;
}

/** KEY=VALUE, as --build-arg takes it; a bare KEY takes this shell's value, as docker does. */
export function parseBuildArg(value: string): [string, string] {
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
    throw usageError(build, `invalid --build-arg "${value}": give NAME=VALUE`);
  }
  if (eq >= 0) return [key, value.slice(eq + 1)];
  const fromEnv = process.env[key];
  if (fromEnv === undefined)
    throw usageError(build, `--build-arg ${key}: not set in this shell; give ${key}=VALUE`);
  return [key, fromEnv];
}

/**
 * id=ID,secret=NAME[,key=KEY]: the build secret ID from key KEY (default: ID) of the Secret NAME
 * in the namespace. Unlike docker's src=FILE, the value stays in the cluster, never in the Image.
 */
export function parseSecret(value: string): { id: string; secretKeyRef: { name: string; key: string } } {
  const fields = Object.fromEntries(
    value.split(',').map((kv) => {
      const eq = kv.indexOf('=');
      return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
  const unknown = Object.keys(fields).filter((k) => !['id', 'secret', 'key'].includes(k));
  if (!fields.id || !fields.secret || unknown.length > 0) {
    throw usageError(
      build,
      `invalid --secret "${value}": give id=ID,secret=SECRET_NAME[,key=KEY] (a Secret of the namespace)`,
    );
  }
  return { id: fields.id, secretKeyRef: { name: fields.secret, key: fields.key || fields.id } };
}

export const build: Command = {
  name: 'build',
  summary: 'Build an image from a Dockerfile',
  usage:
    'PATH -t IMAGE [-f DOCKERFILE] [--build-arg NAME=VALUE]... [--target STAGE] [--secret id=ID,secret=NAME[,key=KEY]]... [--name NAME] [--timeout DURATION] [--no-wait]',
  description:
    'Build PATH (a directory here, less what its .dockerignore names) on a builder Host and push it ' +
    'to IMAGE (repository:tag), as docker build -t does: the files go into an Image object (--name, ' +
    'default from IMAGE) with spec.build, and the command waits for its Build and prints the pushed ' +
    'digest, or the failing step and its last output lines (exit 1). Building the same files and ' +
    'options again makes no new build. The context may hold up to 1 MiB. Workloads that name the ' +
    'Image (imageFrom) roll out each new digest.',
  examples: [
    'kubectl gantry build -t registry.example/web:1 .',
    'kubectl gantry build -t registry.example/web:1 -f build/Dockerfile --build-arg VERSION=1.2 --target release .',
    'kubectl gantry build -t registry.example/web:1 --secret id=npmrc,secret=npm-token .',
  ],
  options: {
    tag: { type: 'string', short: 't' },
    file: { type: 'string', short: 'f' },
    'build-arg': { type: 'string', multiple: true },
    target: { type: 'string' },
    secret: { type: 'string', multiple: true },
    name: { type: 'string' },
    timeout: { type: 'string' },
    'no-wait': { type: 'boolean' },
  },
  async run(ctx: Context) {
    const [dir, ...extra] = ctx.positionals;
    const tag = ctx.values.tag as string | undefined;
    if (!tag) throw usageError(build, 'an image to push to is required (-t IMAGE)');
    if (!dir) throw usageError(build, 'a context directory is required (PATH, e.g. ".")');
    if (extra.length > 0) throw usageError(build, `unexpected argument "${extra[0]}"`);
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new CliError(`${dir}: not a directory (the context is a directory here)`);
    }
    const timeoutFlag = ctx.values.timeout as string | undefined;
    const timeoutMs = timeoutFlag === undefined ? 0 : parseDuration(timeoutFlag);
    if (timeoutMs === undefined)
      throw usageError(build, `invalid --timeout "${timeoutFlag}": give e.g. 90s or 10m`);
    const dockerfile = dockerfileInContext(dir, (ctx.values.file as string | undefined) ?? 'Dockerfile');
    const context = readContext(dir, dockerfile);
    const buildArgs = Object.fromEntries(
      ((ctx.values['build-arg'] as string[] | undefined) ?? []).map(parseBuildArg),
    );
    const secrets = ((ctx.values.secret as string[] | undefined) ?? []).map(parseSecret);
    const target = ctx.values.target as string | undefined;
    const spec: ImageSpecInput = {
      image: tag,
      build: {
        context: {
          ...(Object.keys(context.files).length > 0 && { files: context.files }),
          ...(Object.keys(context.binaryFiles).length > 0 && { binaryFiles: context.binaryFiles }),
        },
        dockerfile,
        ...(Object.keys(buildArgs).length > 0 && { buildArgs }),
        ...(target && { target }),
        ...(secrets.length > 0 && { secrets }),
      },
    };
    const cluster = ctx.cluster();
    const name = (ctx.values.name as string | undefined) ?? nameFromImage(tag);
    const applied = await cluster
      .api('Image')
      .apply(
        { metadata: { name, namespace: cluster.namespace }, spec: spec as Image['spec'] },
        { fieldManager: buildFieldManager },
      );
    const files = Object.keys(context.files).length + Object.keys(context.binaryFiles).length;
    ctx.out(
      `image.gantry.dev/${name} applied (${files} files, ${Math.ceil(context.bytes / 1024)} KiB of context)\n`,
    );
    if (ctx.values['no-wait']) return 0;
    return followBuild(ctx, applied, timeoutMs);
  },
};

/** -f as a path inside the context (docker also takes one outside it; an Image cannot carry that). */
function dockerfileInContext(dir: string, file: string): string {
  const inside = path.relative(
    path.resolve(dir),
    path.resolve(file === 'Dockerfile' ? path.join(dir, file) : file),
  );
  const posix = inside.split(path.sep).join('/');
  if (!isContextPath(posix)) throw new CliError(`the Dockerfile ${file} must be inside the context ${dir}`);
  return posix;
}

/**
 * Waits until the Image's controller has seen this generation, then follows the Build it names:
 * prints where it runs and when it starts, and ends with the digest or the failure.
 */
async function followBuild(ctx: Context, applied: Image, timeoutMs: number): Promise<number> {
  const cluster = ctx.cluster();
  const images = cluster.api('Image');
  const builds = cluster.api('Build');
  const key = { namespace: applied.metadata.namespace, name: applied.metadata.name! };
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let said = '';
  const say = (line: string) => {
    if (line !== said) ctx.out(`${line}\n`);
    said = line;
  };
  for (;;) {
    const image = await images.get(key);
    if (!image) throw new CliError(`image.gantry.dev/${key.name} was deleted during the build`);
    const resolved = getCondition(image.status?.conditions, 'Resolved');
    const current = resolved && (resolved.observedGeneration ?? 0) >= (applied.metadata.generation ?? 1);
    if (current && resolved.status === 'False') {
      throw new CliError(`${image.spec.image}: ${resolved.reason}: ${resolved.message}`);
    }
    const buildName = current ? image.status?.build : undefined;
    const b: Build | undefined = buildName
      ? await builds.get({ namespace: key.namespace, name: buildName })
      : undefined;
    const phase = b?.status?.phase;
    if (b && phase === 'Succeeded') {
      const took =
        b.status?.startedAt && b.status.finishedAt
          ? ` in ${Math.round((Date.parse(b.status.finishedAt) - Date.parse(b.status.startedAt)) / 1000)}s`
          : '';
      say(`${image.spec.image}: ${b.status?.digest} (Build ${buildName} on ${b.spec.nodeName}${took})`);
      return 0;
    }
    if (b)
      say(
        `Build ${buildName} on ${b.spec.nodeName}: ${phase ?? 'Pending'}${b.status?.message ? ` (${b.status.message})` : ''}`,
      );
    if (Date.now() > deadline) {
      throw new CliError(
        `timed out waiting for ${buildName ? `Build ${buildName}` : `image.gantry.dev/${key.name}'s Build`}`,
      );
    }
    await sleep(realClock, 500);
  }
}

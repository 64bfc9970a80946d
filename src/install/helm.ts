// Where helm is, and how the project renders its chart. The local cluster builds helm from its Go
// module into ~/.cache/gantry/bin; $HELM or a helm on PATH work too.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cacheDir, versions } from '../localcluster/versions.js';

const run = promisify(execFile);

export const chartDir = fileURLToPath(new URL('../../charts/gantry/', import.meta.url));

/**
 * The Kubernetes version `helm template` assumes. A helm built with `go install` (no release
 * ldflags) assumes v1.20, which the chart's kubeVersion refuses; say the local cluster's instead.
 */
export const templateKubeVersion = versions.kubernetes;

export function helmBinary(): string {
  if (process.env.HELM) return process.env.HELM;
  const cached = path.join(cacheDir, 'bin', 'helm');
  if (fs.existsSync(cached)) return cached;
  return 'helm';
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws on a non-zero exit. */
export async function helm(args: string[], opts: { timeoutMs?: number } = {}): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(helmBinary(), args, {
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message?: string };
    if (err.code === 'ENOENT') {
      throw new Error(
        `helm not found (${helmBinary()}): run \`npm run cluster:up\` once (it builds helm), put helm on PATH, or set HELM`,
      );
    }
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? err.message ?? '',
    };
  }
}

export interface TemplateOptions {
  release?: string;
  namespace?: string;
  /** Values, given to helm as a JSON document (-f); JSON is YAML. */
  values?: Record<string, unknown>;
  set?: string[];
  showOnly?: string[];
}

/** `helm template` of charts/gantry; never throws on a non-zero exit (tests look at refusals). */
export async function templateChart(opts: TemplateOptions = {}): Promise<HelmResult> {
  const args = [
    'template',
    opts.release ?? 'gantry',
    chartDir,
    '--namespace',
    opts.namespace ?? 'gantry-system',
    '--kube-version',
    templateKubeVersion,
  ];
  for (const s of opts.set ?? []) args.push('--set', s);
  for (const f of opts.showOnly ?? []) args.push('--show-only', f);
  if (!opts.values) return helm(args);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-values-'));
  try {
    const file = path.join(dir, 'values.json');
    fs.writeFileSync(file, JSON.stringify(opts.values));
    return await helm([...args, '--values', file]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm template` of charts/gantry; throws with helm's message when it fails. */
export async function renderChart(opts: TemplateOptions = {}): Promise<string> {
  const r = await templateChart(opts);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr.trim()}`);
  return r.stdout;
}

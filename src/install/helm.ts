// How the project runs helm and renders its chart: $HELM, or helm on PATH (the local cluster builds
// one into ~/.cache/gantry/bin; the scripts and the test runner put that first on PATH).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const chartDir = fileURLToPath(new URL('../../charts/gantry/', import.meta.url));

/**
 * The Kubernetes version `helm template` renders for: the oldest the chart supports (its
 * kubeVersion). Offline, helm assumes v1.20, which the chart refuses.
 */
export const templateKubeVersion = (() => {
  const chart = fs.readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8');
  const minimum = /^kubeVersion:\s*["']?>=\s*v?(\d+\.\d+\.\d+)/m.exec(chart)?.[1];
  if (!minimum) throw new Error('charts/gantry/Chart.yaml has no kubeVersion ">=X.Y.Z"');
  return minimum;
})();

export function helmBinary(): string {
  return process.env.HELM ?? 'helm';
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

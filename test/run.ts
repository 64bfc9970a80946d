// The test entry point behind `npm test` and `npm run test:<suite>`.
// unit needs nothing; integration and e2e need the local cluster: a running one is reused,
// otherwise it is started here and stopped again at the end (GANTRY_KEEP_CLUSTER=1 keeps it).
// Each suite runs in its own node test runner, with its own time limit per file; a last summary
// counts them all.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { down, up } from '../src/localcluster/cluster.js';
import { readLocalCluster } from '../src/localcluster/state.js';
import { cacheDir } from '../src/localcluster/versions.js';

const suites = ['unit', 'integration', 'e2e', 'install'] as const;
type Suite = (typeof suites)[number];

/**
 * How long one test file of each suite may run. Node 20's --test-timeout bounds each file as a
 * whole (the runner cancels the file's process at that age), so these are per-file budgets: the
 * slowest file of the suite as measured (each file run alone on the local cluster, 2026-12), with
 * margin for a busy machine. A hung test costs that much, not the 15 minutes every file had before.
 *  - unit: slowest file 5.8 s (kube/manager.test.ts), most 1-3 s: 30 s.
 *  - integration: slowest agent/agent.test.ts 38 s, then install/rbac.test.ts 28 s and
 *    api/crds.test.ts 21 s, the other 15 files 2-17 s: 5 min, which also leaves room for a
 *    failing wait (at most 3 min in any of them) to fail with its own message.
 *  - e2e: property.test.ts 342-473 s (1,000 specs through real hosts), workloads.test.ts 97 s,
 *    migration.test.ts 68 s, fencing.test.ts 49 s: 15 min.
 *  - install: helm.test.ts keeps a Pod and a Gantry container beside a kubelet for ten minutes
 *    by design, then waits up to five more for the kubelet's image GC round: 25 min.
 */
const fileTimeoutMs: Record<Suite, number> = {
  unit: 30_000,
  integration: 5 * 60_000,
  e2e: 15 * 60_000,
  install: 25 * 60_000,
};

/** Integration and e2e files share the one local cluster: one at a time. */
const concurrency: Record<Suite, number> = { unit: 2, integration: 1, e2e: 1, install: 1 };

const arg = process.argv[2] ?? 'all';
const selected: Suite[] = arg === 'all' ? [...suites] : suites.filter((s) => s === arg);
if (selected.length === 0) {
  console.error(`usage: run.ts all|${suites.join('|')}`);
  process.exit(2);
}

function testFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f))
    .sort();
}

async function clusterIsUp(): Promise<boolean> {
  const c = readLocalCluster();
  if (!c) return false;
  const r = spawnSync(`${c.binDir}/kubectl`, ['--kubeconfig', c.kubeconfig, 'get', '--raw', '/readyz'], {
    timeout: 10_000,
  });
  return r.status === 0;
}

const counters = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'] as const;
type Counts = Record<(typeof counters)[number], number>;

/** The summary a runner's TAP report ends with ("# pass 12"); undefined if it has none (it crashed). */
function tapSummary(file: string): Counts | undefined {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const counts = {} as Counts;
  for (const c of counters) {
    const m = new RegExp(`^# ${c} (\\d+)$`, 'm').exec(text);
    if (!m) return undefined;
    counts[c] = Number(m[1]);
  }
  return counts;
}

/** One node test runner for the suite's files; resolves with its exit code and its counts. */
async function runSuite(suite: Suite, tapFile: string): Promise<{ code: number; counts?: Counts }> {
  const files = testFiles(path.join('test', suite));
  if (files.length === 0) {
    console.log(`no ${suite} tests exist yet`);
    return { code: 0 };
  }
  console.log(`\n== ${suite}: ${files.length} files, at most ${fileTimeoutMs[suite] / 1000} s each`);
  // Not spawnSync: when the cluster was started here, this process is the parent of its daemons
  // and must stay free to reap the ones tests stop.
  const runner = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tapFile}`,
      `--test-concurrency=${concurrency[suite]}`,
      `--test-timeout=${fileTimeoutMs[suite]}`,
      ...files,
    ],
    // The cluster's own kubectl, helm and friends come first on PATH.
    {
      stdio: 'inherit',
      env: { ...process.env, PATH: `${path.join(cacheDir, 'bin')}:${process.env.PATH}` },
    },
  );
  const [code] = (await once(runner, 'exit')) as [number | null];
  return { code: code ?? 1, counts: tapSummary(tapFile) };
}

async function main(): Promise<number> {
  const needsCluster = selected.some((s) => s !== 'unit');
  let started = false;
  if (needsCluster && !(await clusterIsUp())) {
    console.log('starting the local cluster for the tests');
    await up({ hosts: Number(process.env.GANTRY_HOSTS ?? 2) });
    started = true;
  }
  const reports = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-tests-'));
  try {
    const results: { suite: Suite; code: number; counts?: Counts }[] = [];
    for (const suite of selected) {
      results.push({ suite, ...(await runSuite(suite, path.join(reports, `${suite}.tap`))) });
    }
    if (results.length > 1) {
      const total = Object.fromEntries(
        counters.map((c) => [c, results.reduce((n, r) => n + (r.counts?.[c] ?? 0), 0)]),
      ) as Counts;
      console.log(`\n== all suites (${results.map((r) => `${r.suite}: exit ${r.code}`).join(', ')})`);
      for (const c of counters) console.log(`ℹ ${c} ${total[c]}`);
      for (const r of results.filter((r) => !r.counts))
        console.log(`✖ ${r.suite}: the runner gave no summary (it exited ${r.code})`);
    }
    return results.some((r) => r.code !== 0) ? 1 : 0;
  } finally {
    fs.rmSync(reports, { recursive: true, force: true });
    if (started && process.env.GANTRY_KEEP_CLUSTER !== '1') await down();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

// The test entry point behind `npm test` and `npm run test:<suite>`.
// unit needs nothing; integration and e2e need the local cluster: a running one is reused,
// otherwise it is started here and stopped again at the end (GANTRY_KEEP_CLUSTER=1 keeps it).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { down, up } from '../src/localcluster/cluster.js';
import { readLocalCluster } from '../src/localcluster/state.js';
import { cacheDir } from '../src/localcluster/versions.js';

const suites = ['unit', 'integration', 'e2e'] as const;
type Suite = (typeof suites)[number];

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

async function main(): Promise<number> {
  const files = selected.flatMap((s) => testFiles(path.join('test', s)));
  if (files.length === 0) {
    console.log(`no ${selected.join('/')} tests exist yet`);
    return 0;
  }
  const needsCluster = selected.some((s) => s !== 'unit');
  let started = false;
  if (needsCluster && !(await clusterIsUp())) {
    console.log('starting the local cluster for the tests');
    await up({ hosts: Number(process.env.GANTRY_HOSTS ?? 2) });
    started = true;
  }
  try {
    // One runner for every file, so its summary counts the whole run. Files run one at a time:
    // integration and e2e tests share the cluster. Not spawnSync: when the cluster was started
    // here, this process is the parent of its daemons and must stay free to reap the ones tests stop.
    const runner = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--test',
        '--test-reporter=spec',
        `--test-concurrency=${needsCluster ? 1 : 2}`,
        '--test-timeout=900000',
        ...files,
      ],
      // The cluster's own kubectl, helm and friends come first on PATH.
      {
        stdio: 'inherit',
        env: { ...process.env, PATH: `${path.join(cacheDir, 'bin')}:${process.env.PATH}` },
      },
    );
    const [code] = (await once(runner, 'exit')) as [number | null];
    return code ?? 1;
  } finally {
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

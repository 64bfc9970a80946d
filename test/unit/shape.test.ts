// The shape of the test tree: integration and e2e tests run against the real local cluster, so
// none of them may reach the in-memory runtime of the benchmarks (bench/support/simulated-runtime.ts),
// directly or through a helper. The import graph is followed from every file under
// test/integration and test/e2e, as TypeScript reads imports (comments and strings are not imports).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const simulatedRuntime = path.join(repoRoot, 'bench', 'support', 'simulated-runtime.ts');

function tsFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f))
    .sort();
}

/** The file a relative import names (`./x.js` is `./x.ts` in the source), or undefined for a package. */
function resolveImport(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')];
  return candidates.find((c) => c.endsWith('.ts') && fs.existsSync(c));
}

/**
 * Every chain of imports from one of `roots` to `target`, each as the files it passes through
 * (root first); empty when none reaches it.
 */
function importChains(roots: string[], target: string): string[][] {
  const chains: string[][] = [];
  for (const root of roots) {
    // Breadth first, remembering how each file was reached, so each root reports its shortest chain.
    const via = new Map<string, string | undefined>([[root, undefined]]);
    const queue = [root];
    while (queue.length > 0) {
      const file = queue.shift()!;
      if (file === target) {
        const chain: string[] = [];
        for (let f: string | undefined = file; f !== undefined; f = via.get(f)) chain.unshift(f);
        chains.push(chain);
        break;
      }
      const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
      for (const { fileName } of importedFiles) {
        const next = resolveImport(file, fileName);
        if (next !== undefined && !via.has(next)) {
          via.set(next, file);
          queue.push(next);
        }
      }
    }
  }
  return chains;
}

const show = (chains: string[][]) =>
  chains.map((c) => c.map((f) => path.relative(repoRoot, f)).join(' -> ')).join('\n');

describe('the shape of the tests', () => {
  it('no integration or e2e test imports the in-memory runtime, directly or through a helper', () => {
    assert.ok(fs.existsSync(simulatedRuntime), `${simulatedRuntime} moved: update this test`);
    const roots = ['integration', 'e2e'].flatMap((s) => tsFiles(path.join(repoRoot, 'test', s)));
    assert.ok(roots.length > 10, `found only ${roots.length} integration and e2e files`);
    const chains = importChains(roots, simulatedRuntime);
    assert.deepEqual(
      show(chains),
      '',
      'integration and e2e tests run on the real local cluster; the simulated runtime is for benchmarks and unit tests',
    );
  });

  it('finds an import of the in-memory runtime through a helper, and none in comments or strings', () => {
    // The check above passes when nothing is found: show that it finds what it looks for.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-shape-'));
    try {
      const target = path.join(dir, 'bench', 'support', 'simulated-runtime.ts');
      const write = (rel: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
        fs.writeFileSync(path.join(dir, rel), text);
      };
      write('bench/support/simulated-runtime.ts', 'export const fake = 1;\n');
      write('test/support/helper.ts', "export { fake } from '../../bench/support/simulated-runtime.js';\n");
      write('test/e2e/uses-helper.test.ts', "import { fake } from '../support/helper.js';\nvoid fake;\n");
      write(
        'test/e2e/dynamic.test.ts',
        "const m = await import('../../bench/support/simulated-runtime.js');\nvoid m;\n",
      );
      write(
        'test/e2e/innocent.test.ts',
        "// import '../../bench/support/simulated-runtime.js'\nconst s = \"import '../../bench/support/simulated-runtime.js'\";\nvoid s;\n",
      );
      const roots = tsFiles(path.join(dir, 'test', 'e2e'));
      const chains = importChains(roots, target).map((c) => c.map((f) => path.relative(dir, f)));
      assert.deepEqual(chains, [
        ['test/e2e/dynamic.test.ts', 'bench/support/simulated-runtime.ts'],
        ['test/e2e/uses-helper.test.ts', 'test/support/helper.ts', 'bench/support/simulated-runtime.ts'],
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// What the image build hashes as its inputs: the files the Dockerfile copies from the context,
// with .dockerignore applied as Docker applies it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { contextSources, dockerignoreMatcher } from '../../../src/localcluster/image.js';

describe('contextSources', () => {
  it('lists what COPY and ADD take from the context, not from another stage', () => {
    const dockerfile = [
      'FROM a AS build',
      '# COPY commented/ out',
      'COPY package.json package-lock.json ./',
      'COPY --chown=1:1 src \\',
      '     ./src',
      'ADD ["with space.txt", "/dest/"]',
      'FROM b',
      'COPY --from=build /src/dist ./dist',
      'copy LICENSE ./LICENSE',
    ].join('\n');
    assert.deepEqual(contextSources(dockerfile), [
      'package.json',
      'package-lock.json',
      'src',
      'with space.txt',
      'LICENSE',
    ]);
  });

  it("covers the repository's Dockerfile", () => {
    const sources = contextSources(fs.readFileSync('Dockerfile', 'utf8'));
    for (const s of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'LICENSE']) {
      assert.ok(sources.includes(s), `${s} is not among ${sources.join(', ')}`);
    }
  });
});

describe('dockerignoreMatcher', () => {
  const ignored = dockerignoreMatcher(
    ['# comment', 'node_modules', '/dist/', '*.md', 'docs/**/*.png', 'secret*', '!secret-ok'].join('\n'),
  );

  it('matches from the context root, a directory with everything under it', () => {
    assert.ok(ignored('node_modules'));
    assert.ok(ignored('node_modules/zod/index.js'));
    assert.ok(ignored('dist/cmd/agent.js'));
    assert.ok(!ignored('src/node_modules_helper.ts'));
    assert.ok(!ignored('src/dist/x.ts'), 'patterns are anchored at the root');
  });

  it('keeps * within one path element and lets ** cross them', () => {
    assert.ok(ignored('README.md'));
    assert.ok(!ignored('src/README.md'));
    assert.ok(ignored('docs/a/b/c.png'));
    assert.ok(!ignored('docs/a/b/c.svg'));
  });

  it('lets a later ! pattern take a path back', () => {
    assert.ok(ignored('secret-key'));
    assert.ok(!ignored('secret-ok'));
  });
});

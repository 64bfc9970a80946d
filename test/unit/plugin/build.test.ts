// What `kubectl gantry build` sends: the context directory's files less what .dockerignore names
// (Docker's rules: "*" within a segment, "**" across them, "!" exceptions, a directory covering
// its contents), text as text and the rest base64, the Dockerfile always, a context over the limit
// refused with what to do; and its flags read as docker's (--build-arg) or said plainly (--secret).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  isIgnored,
  maxContextBytes,
  parseBuildArg,
  parseDockerignore,
  parseSecret,
  readContext,
} from '../../../src/plugin/build.js';
import { CliError } from '../../../src/plugin/client.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-build-ctx-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string | Buffer>): string {
  const dir = path.join(root, name);
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
  return dir;
}

describe('.dockerignore', () => {
  const ignored = (rules: string, p: string) => isIgnored(parseDockerignore(rules), p);

  it('matches within a segment, across segments, and covers a directory', () => {
    assert.ok(ignored('*.log', 'a.log'));
    assert.ok(!ignored('*.log', 'sub/a.log'), '"*" stays in its segment');
    assert.ok(ignored('**/*.log', 'sub/deep/a.log'));
    assert.ok(ignored('**/*.log', 'a.log'), '"**/" matches no directory too');
    assert.ok(ignored('node_modules', 'node_modules/x/index.js'));
    assert.ok(ignored('/build/', 'build/out.o'), 'leading and trailing slashes do not matter');
    assert.ok(ignored('a?c', 'abc') && !ignored('a?c', 'a/c'));
    assert.ok(!ignored('# comment\n\n', 'x'));
    assert.ok(ignored('docs/*.md', 'docs/a.md') && !ignored('docs/*.md', 'a.md'));
    assert.ok(!ignored('a.txt', 'a.txt.bak'));
  });

  it('lets the last matching rule decide, "!" re-including', () => {
    const rules = '*.md\n!README.md\nsecret/**\n';
    assert.ok(ignored(rules, 'CHANGES.md'));
    assert.ok(!ignored(rules, 'README.md'));
    assert.ok(ignored(rules, 'secret/key'));
    assert.ok(
      ignored('!README.md\n*.md', 'README.md'),
      'an exception before the rule it excepts does nothing',
    );
  });
});

describe('readContext', () => {
  it('sends text as files and the rest base64, less what .dockerignore names, Dockerfile always', () => {
    const dir = tree('app', {
      Dockerfile: 'FROM scratch\nCOPY . /\n',
      '.dockerignore': '*.log\nDockerfile\nnode_modules\n',
      'src/main.js': 'console.log("hi")\n',
      'assets/logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0x00]),
      'debug.log': 'noise',
      'node_modules/x/index.js': 'x',
    });
    const ctx = readContext(dir, 'Dockerfile');
    assert.deepEqual(Object.keys(ctx.files).sort(), ['.dockerignore', 'Dockerfile', 'src/main.js']);
    assert.deepEqual(ctx.binaryFiles, { 'assets/logo.png': 'iVBOR/8A' });
    assert.equal(ctx.files['src/main.js'], 'console.log("hi")\n');
  });

  it('refuses a context without its Dockerfile, and one over the limit, saying what to do', () => {
    assert.throws(() => readContext(tree('nodf', { 'a.txt': 'a' }), 'Dockerfile'), /has no Dockerfile/);
    const big = tree('big', { Dockerfile: 'FROM scratch\n', 'blob.txt': 'x'.repeat(maxContextBytes) });
    assert.throws(
      () => readContext(big, 'Dockerfile'),
      (e) => e instanceof CliError && /over 1024 KiB \(at blob\.txt\).*\.dockerignore/.test(e.message),
    );
  });
});

describe('build flags', () => {
  it('reads --build-arg NAME=VALUE, and a bare NAME from the environment as docker does', () => {
    assert.deepEqual(parseBuildArg('VERSION=1.2=3'), ['VERSION', '1.2=3']);
    assert.deepEqual(parseBuildArg('EMPTY='), ['EMPTY', '']);
    process.env.GANTRY_TEST_ARG = 'from-env';
    assert.deepEqual(parseBuildArg('GANTRY_TEST_ARG'), ['GANTRY_TEST_ARG', 'from-env']);
    delete process.env.GANTRY_TEST_ARG;
    assert.throws(() => parseBuildArg('GANTRY_TEST_ARG'), /not set in this shell/);
    assert.throws(() => parseBuildArg('1BAD=x'), /invalid --build-arg/);
  });

  it('reads --secret id=ID,secret=NAME[,key=KEY], the key defaulting to the id', () => {
    assert.deepEqual(parseSecret('id=npmrc,secret=npm-token'), {
      id: 'npmrc',
      secretKeyRef: { name: 'npm-token', key: 'npmrc' },
    });
    assert.deepEqual(parseSecret('id=t,secret=creds,key=token').secretKeyRef, {
      name: 'creds',
      key: 'token',
    });
    assert.throws(() => parseSecret('id=t,src=./token'), /give id=ID,secret=SECRET_NAME/);
    assert.throws(() => parseSecret('secret=creds'), /give id=ID/);
  });
});

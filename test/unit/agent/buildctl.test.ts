// buildctl's command line for a Build, and reading a failed build's output: the failing step with
// its Dockerfile line, the error, the step's last lines (the output below is BuildKit v0.34's own).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildctlArgs, cacheRef, metadataDigest, parseFailure } from '../../../src/agent/buildctl.js';
import type { BuildSpec } from '../../../src/api/v1alpha1/index.js';

const files = {
  context: '/state/builds/x/context',
  secrets: { tok: '/state/builds/x/secrets/tok' },
  metadata: '/m.json',
};

describe('buildctlArgs', () => {
  it('asks the Dockerfile frontend for the spec and pushes to spec.image with a registry cache', () => {
    const spec: BuildSpec = {
      image: '127.0.0.1:5000/e2e/app:1',
      context: { files: { 'build/Dockerfile': 'FROM scratch' } },
      dockerfile: 'build/Dockerfile',
      buildArgs: { VERSION: '2', A: 'x=y' },
      target: 'final',
      secrets: [{ id: 'tok', secretKeyRef: { name: 's', key: 'k' } }],
      nodeName: 'host-1',
    };
    assert.deepEqual(buildctlArgs('unix:///run/buildkit.sock', spec, files), [
      '--addr',
      'unix:///run/buildkit.sock',
      'build',
      '--progress=plain',
      '--frontend=dockerfile.v0',
      '--local=context=/state/builds/x/context',
      '--local=dockerfile=/state/builds/x/context/build',
      '--opt=filename=Dockerfile',
      '--opt=build-arg:A=x=y',
      '--opt=build-arg:VERSION=2',
      '--opt=target=final',
      '--secret=id=tok,src=/state/builds/x/secrets/tok',
      '--output=type=image,name=127.0.0.1:5000/e2e/app:1,push=true',
      '--export-cache=type=registry,ref=127.0.0.1:5000/e2e/app:buildcache,mode=max',
      '--import-cache=type=registry,ref=127.0.0.1:5000/e2e/app:buildcache',
      '--metadata-file=/m.json',
    ]);
  });

  it('puts the cache beside the image in its repository', () => {
    assert.equal(cacheRef('nginx'), 'docker.io/library/nginx:buildcache');
    assert.equal(cacheRef('reg:5000/a/b:1'), 'reg:5000/a/b:buildcache');
  });
});

describe('metadataDigest', () => {
  it('reads containerimage.digest, and nothing from a file without one', () => {
    const digest = `sha256:${'f1'.repeat(32)}`;
    assert.equal(metadataDigest(JSON.stringify({ 'containerimage.digest': digest })), digest);
    assert.equal(metadataDigest('{}'), undefined);
    assert.equal(metadataDigest('not json'), undefined);
  });
});

const failed = `#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 191B done
#1 DONE 0.0s

#2 [internal] load metadata for 127.0.0.1:5000/gantry/web:1
#2 DONE 0.0s

#3 [internal] load .dockerignore
#3 transferring context: 2B done
#3 DONE 0.0s

#4 importing cache manifest from 127.0.0.1:5000/tryout/app:buildcache
#4 ERROR: failed to configure registry cache importer: 127.0.0.1:5000/tryout/app:buildcache: not found

#5 [stage-0 1/4] FROM 127.0.0.1:5000/gantry/web:1@sha256:94fc15dec14023ced4f6cdfa1b1458db5a3e4c80f286b4fff67fa4042975e580
#5 resolve 127.0.0.1:5000/gantry/web:1@sha256:94fc15dec14023ced4f6cdfa1b1458db5a3e4c80f286b4fff67fa4042975e580 0.0s done
#5 sha256:9acf746d060433d941a31a408808fa39f41afa1e12a999a593225d0a424410e2 1.09MB / 1.09MB 0.0s done
#5 extracting sha256:9acf746d060433d941a31a408808fa39f41afa1e12a999a593225d0a424410e2 0.1s done
#5 DONE 0.2s

#6 [stage-0 2/4] RUN echo hi > /www/x
#6 DONE 0.1s

#7 [stage-0 3/4] RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo secret-ok
#7 0.058 secret-ok
#7 DONE 0.1s

#8 [stage-0 4/4] RUN echo before; exit 3
#8 0.060 before
#8 ERROR: process "/bin/sh -c echo before; exit 3" did not complete successfully: exit code: 3
------
 > importing cache manifest from 127.0.0.1:5000/tryout/app:buildcache:
------
------
 > [stage-0 4/4] RUN echo before; exit 3:
0.060 before
------
Dockerfile:4
--------------------
   2 |     RUN echo hi > /www/x
   3 |     RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo secret-ok
   4 | >>> RUN echo before; exit 3
   5 |     
--------------------
error: failed to solve: process "/bin/sh -c echo before; exit 3" did not complete successfully: exit code: 3
`;

describe('parseFailure', () => {
  it("names the failing step and its Dockerfile line, not the missing cache's error", () => {
    const f = parseFailure(failed);
    assert.equal(f.step, '[stage-0 4/4] RUN echo before; exit 3 (Dockerfile:4)');
    assert.equal(
      f.message,
      'process "/bin/sh -c echo before; exit 3" did not complete successfully: exit code: 3',
    );
    assert.equal(
      f.logTail,
      '[stage-0 4/4] RUN echo before; exit 3\n0.060 before\nERROR: process "/bin/sh -c echo before; exit 3" did not complete successfully: exit code: 3',
    );
  });

  it('falls back to the last lines when no step failed (buildkitd unreachable)', () => {
    const f = parseFailure('error: listing workers: connection refused\n');
    assert.equal(f.step, undefined);
    assert.equal(f.message, 'listing workers: connection refused');
    assert.equal(f.logTail, 'error: listing workers: connection refused');
  });
});

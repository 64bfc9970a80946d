// The controller's flags: defaults, both spellings, booleans, the environment, and the messages
// for what is wrong.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  controllerUsage,
  parseControllerFlags,
  type ControllerOptions,
} from '../../../src/controller/options.js';

function parse(argv: string[], env: NodeJS.ProcessEnv = {}): ControllerOptions {
  const result = parseControllerFlags(argv, env);
  assert.ok(result.ok, result.ok ? '' : result.error);
  return result.value;
}

function error(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  const result = parseControllerFlags(argv, env);
  assert.ok(!result.ok, 'expected the flags to be refused');
  return result.error;
}

describe('parseControllerFlags', () => {
  it('has defaults for everything but the kubeconfig and the log level', () => {
    assert.deepEqual(parse([]), {
      metricsBindAddress: '127.0.0.1:8080',
      healthProbeBindAddress: '127.0.0.1:8081',
      leaderElect: true,
      leaderElectionNamespace: 'gantry-system',
      leaderElectionId: 'gantry-controller',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      insecureRegistries: ['127.0.0.1:5000', 'localhost:5000'],
      registryTimeoutMs: 10_000,
      hostLostGraceMs: 40_000,
      autoscaleSyncPeriodMs: 15_000,
    });
  });

  it('takes --flag=value and --flag value', () => {
    const o = parse([
      '--kubeconfig=/tmp/kc',
      '--metrics-bind-address',
      '127.0.0.1:0',
      '--health-probe-bind-address=:8081',
      '--leader-elect-lease-duration=4s',
      '--leader-elect-renew-deadline',
      '3s',
      '--leader-elect-retry-period=500ms',
      '--log-level=debug',
      '--insecure-registries=registry.local:5000, [::1]:5000',
    ]);
    assert.equal(o.kubeconfig, '/tmp/kc');
    assert.equal(o.metricsBindAddress, '127.0.0.1:0');
    assert.equal(o.healthProbeBindAddress, ':8081');
    assert.deepEqual([o.leaseDurationMs, o.renewDeadlineMs, o.retryPeriodMs], [4000, 3000, 500]);
    assert.equal(o.logLevel, 'debug');
    assert.deepEqual(o.insecureRegistries, ['registry.local:5000', '[::1]:5000']);
    assert.deepEqual(parse(['--insecure-registries=']).insecureRegistries, []);
    assert.equal(parse(['--metrics-bind-address=0']).metricsBindAddress, '0');
  });

  it('reads a bare boolean as true and accepts an explicit value in either spelling', () => {
    assert.equal(parse(['--leader-elect']).leaderElect, true);
    assert.equal(parse(['--leader-elect=false']).leaderElect, false);
    assert.equal(parse(['--leader-elect', 'false']).leaderElect, false);
    assert.equal(parse(['--leader-elect', '--log-level=info']).leaderElect, true);
  });

  it('falls back to GANTRY_<FLAG> in the environment; a flag wins', () => {
    const env = { GANTRY_LEADER_ELECT: 'false', GANTRY_LEADER_ELECTION_ID: 'from-env' };
    assert.equal(parse([], env).leaderElect, false);
    assert.equal(parse([], env).leaderElectionId, 'from-env');
    assert.equal(parse(['--leader-election-id=from-flag'], env).leaderElectionId, 'from-flag');
  });

  it('names the flag and the problem', () => {
    assert.match(error(['--metrics-bind-address=nowhere']), /--metrics-bind-address: must be host:port/);
    assert.match(
      error(['--leader-elect-retry-period=soon']),
      /--leader-elect-retry-period: must be a duration/,
    );
    assert.match(error(['--leader-elect=maybe']), /--leader-elect: must be true or false/);
    assert.match(error(['--leader-elect', 'maybe']), /unknown argument "maybe"/);
    assert.match(error(['--log-level=loud']), /--log-level: must be one of error, warn, info, debug/);
    assert.match(
      error(['--insecure-registries=http://x']),
      /--insecure-registries: must be a comma-separated list/,
    );
    assert.match(error(['--registry-timeout=0s']), /--registry-timeout: must be longer than 0/);
    assert.match(error(['--no-such-flag']), /unknown argument "--no-such-flag"/);
    assert.match(error(['positional']), /unknown argument "positional"/);
    assert.match(error(['--kubeconfig']), /--kubeconfig needs a value/);
    assert.match(error([], { GANTRY_REGISTRY_TIMEOUT: 'x' }), /--registry-timeout/);
  });

  it("enforces leader election's timing rules", () => {
    assert.match(
      error(['--leader-elect-lease-duration=10s']),
      /--leader-elect-lease-duration: must be longer than --leader-elect-renew-deadline/,
    );
    assert.match(
      error(['--leader-elect-retry-period=9s']),
      /--leader-elect-renew-deadline: must be longer than 1.2 x/,
    );
  });
});

describe('controllerUsage', () => {
  it('lists every flag with its default and environment variable', () => {
    const usage = controllerUsage();
    for (const flag of [
      '--kubeconfig',
      '--metrics-bind-address (default 127.0.0.1:8080)',
      '--leader-elect (default true)',
      'GANTRY_INSECURE_REGISTRIES',
    ]) {
      assert.ok(usage.includes(flag), flag);
    }
  });
});

// The scheduler's filter, score and explanations, as pure functions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allocatableAmounts,
  amounts,
  explain,
  hostImageKeys,
  hostPorts,
  imageKeys,
  portsCollide,
  schedule,
  type ContainerRequest,
  type HostInfo,
} from '../../../src/controller/scheduler.js';

const GiB = 1024 ** 3;
const web = '127.0.0.1:5000/gantry/web:1';

function host(name: string, over: Partial<HostInfo> = {}): HostInfo {
  return {
    name,
    labels: {},
    ready: true,
    heartbeatFresh: true,
    cordoned: false,
    allocatable: { cpuMilli: 2000, memoryBytes: 4 * GiB },
    requested: { cpuMilli: 0, memoryBytes: 0 },
    scoringRequested: { cpuMilli: 0, memoryBytes: 0 },
    hostPorts: [],
    images: new Set(),
    checkpoint: false,
    ...over,
  };
}

function request(over: Partial<ContainerRequest> = {}): ContainerRequest {
  return { requests: { cpuMilli: 100, memoryBytes: 64 * 1024 ** 2 }, imageKeys: imageKeys(web), ...over };
}

const spread = (replicas: Record<string, number>, maxSkew = 1, maxPerHost?: number) => ({
  maxSkew,
  maxPerHost,
  replicas: new Map(Object.entries(replicas)),
});

describe('schedule: filter', () => {
  it('explains why no Host fits, counting each reason like kube-scheduler', () => {
    const result = schedule(request({ requests: { cpuMilli: 1500, memoryBytes: 0 } }), [
      host('a', { cordoned: true }),
      host('b', { requested: { cpuMilli: 1000, memoryBytes: 0 } }),
      host('c', { requested: { cpuMilli: 600, memoryBytes: 0 } }),
    ]);
    assert.equal(result.host, undefined);
    assert.equal(
      result.host === undefined && result.message,
      '0/3 hosts are available: 1 host is cordoned, 2 insufficient cpu.',
    );
  });

  it('leaves out lost, not ready, cordoned, mismatching and full Hosts', () => {
    const result = schedule(
      request({
        nodeSelector: { pool: 'edge' },
        requests: { cpuMilli: 100, memoryBytes: 3 * GiB },
        spread: spread({ e: 2 }, 5, 2),
      }),
      [
        host('a', { heartbeatFresh: false, ready: false }),
        host('b', { ready: false }),
        host('c', { cordoned: true }),
        host('d', { labels: { pool: 'core' } }),
        host('e', { labels: { pool: 'edge' } }),
        host('f', { labels: { pool: 'edge' }, requested: { cpuMilli: 1950, memoryBytes: 2 * GiB } }),
      ],
    );
    assert.ok(result.host === undefined, 'no Host fits');
    assert.deepEqual(result.reasons, {
      HeartbeatLost: 1,
      NotReady: 1,
      Cordoned: 1,
      NodeSelectorMismatch: 1,
      MaxPerHost: 1,
      InsufficientCPU: 1,
      InsufficientMemory: 1,
    });
    assert.equal(
      result.message,
      "0/6 hosts are available: 1 host already runs maxPerHost replicas, 1 host didn't match the node " +
        'selector, 1 host is cordoned, 1 host is not ready, 1 host stopped sending heartbeats, ' +
        '1 insufficient cpu, 1 insufficient memory.',
    );
  });

  it('lets requests fill a Host exactly; unset allocatable does not limit', () => {
    const full = host('a', { requested: { cpuMilli: 1900, memoryBytes: 0 } });
    assert.equal(schedule(request(), [full]).host, 'a');
    const unlimited = host('b', { allocatable: {}, requested: { cpuMilli: 10_000, memoryBytes: 0 } });
    assert.equal(schedule(request(), [unlimited]).host, 'b');
  });

  it('words explanations for one Host, several, and none', () => {
    assert.equal(explain(1, { Cordoned: 1 }), '0/1 host is available: 1 host is cordoned.');
    assert.equal(explain(2, { NotReady: 2 }), '0/2 hosts are available: 2 hosts are not ready.');
    assert.equal(explain(0, {}), '0/0 hosts are available: no Host is registered.');
  });
});

describe('schedule: host ports', () => {
  const tcp = (hostPort: number, hostIP?: string) => ({ hostPort, protocol: 'TCP' as const, hostIP });
  const publishing = (...ports: ReturnType<typeof tcp>[]) => request({ hostPorts: ports });

  it('leaves out Hosts where the port is in use and names the port, as kube-scheduler does', () => {
    const result = schedule(publishing(tcp(8080)), [
      host('a', { hostPorts: [tcp(8080)] }),
      host('b', { hostPorts: [tcp(8080)] }),
      host('c', { cordoned: true }),
    ]);
    assert.equal(result.host, undefined);
    assert.equal(
      'message' in result && result.message,
      '0/3 hosts are available: 1 host is cordoned, 2 hosts have the host port 8080/TCP in use.',
    );
    const one = schedule(publishing(tcp(53), tcp(8080)), [host('a', { hostPorts: [tcp(8080), tcp(53)] })]);
    assert.equal(
      'message' in one && one.message,
      '0/1 host is available: 1 host has the host ports 53/TCP, 8080/TCP in use.',
    );
  });

  it('places it where the port is free; another protocol or port does not collide', () => {
    const udp = { hostPort: 8080, protocol: 'UDP' as const };
    const hosts = [host('a', { hostPorts: [tcp(8080)] }), host('b', { hostPorts: [udp, tcp(8081)] })];
    assert.deepEqual(schedule(publishing(tcp(8080)), hosts), { host: 'b', feasible: 1 });
    // Without host ports nothing is in the way.
    assert.equal(schedule(request(), [host('a', { hostPorts: [tcp(8080)] })]).host, 'a');
  });

  it('collides on overlapping addresses: unset, 0.0.0.0 and :: overlap every address', () => {
    assert.ok(portsCollide(tcp(80), tcp(80, '192.0.2.1')));
    assert.ok(portsCollide(tcp(80, '0.0.0.0'), tcp(80, '192.0.2.1')));
    assert.ok(portsCollide(tcp(80, '::'), tcp(80, '192.0.2.1')));
    assert.ok(portsCollide(tcp(80, '192.0.2.1'), tcp(80, '192.0.2.1')));
    assert.ok(!portsCollide(tcp(80, '192.0.2.1'), tcp(80, '192.0.2.2')));
    assert.ok(!portsCollide(tcp(80), tcp(81)));
    assert.ok(!portsCollide(tcp(80), { hostPort: 80, protocol: 'UDP' }));
    const taken = schedule(publishing(tcp(80, '192.0.2.1')), [
      host('a', { hostPorts: [tcp(80, '192.0.2.1')] }),
    ]);
    assert.equal(
      'message' in taken && taken.message,
      '0/1 host is available: 1 host has the host port 192.0.2.1:80/TCP in use.',
    );
  });

  it("reads a spec's published ports, leaving out those only exposed", () => {
    assert.deepEqual(
      hostPorts({
        ports: [
          { containerPort: 80, protocol: 'TCP', hostPort: 8080 },
          { containerPort: 53, protocol: 'UDP', hostPort: 53, hostIP: '192.0.2.1' },
          { containerPort: 9090, protocol: 'TCP' },
        ],
      }),
      [
        { hostPort: 8080, protocol: 'TCP' },
        { hostPort: 53, protocol: 'UDP', hostIP: '192.0.2.1' },
      ],
    );
    assert.deepEqual(hostPorts(undefined), []);
  });
});

describe('schedule: score', () => {
  it('spreads a Workload evenly: 4 replicas on 2 Hosts go 2/2', () => {
    const replicas: Record<string, number> = {};
    for (let i = 0; i < 4; i++) {
      const chosen = schedule(request({ spread: spread(replicas) }), [host('a'), host('b')]).host!;
      replicas[chosen] = (replicas[chosen] ?? 0) + 1;
    }
    assert.deepEqual(replicas, { a: 2, b: 2 });
  });

  it('with equal spread, prefers the Host that has the image, whatever its name', () => {
    const hosts = [host('a'), host('b', { images: hostImageKeys([{ digest: 'sha256:x', names: [web] }]) })];
    assert.equal(schedule(request({ spread: spread({ a: 1, b: 1 }) }), hosts).host, 'b');
    assert.equal(schedule(request(), hosts).host, 'b');
  });

  it('never lets the image break maxSkew, but uses the room maxSkew gives', () => {
    const hosts = [host('a', { images: new Set(imageKeys(web)) }), host('b')];
    assert.equal(schedule(request({ spread: spread({ a: 1 }, 1) }), hosts).host, 'b');
    assert.equal(schedule(request({ spread: spread({ a: 1 }, 2) }), hosts).host, 'a');
  });

  it('otherwise prefers the least allocated Host, counting Containers without requests at defaults', () => {
    const busy = host('a', { scoringRequested: { cpuMilli: 1000, memoryBytes: GiB } });
    assert.equal(schedule(request(), [busy, host('b')]).host, 'b');
    const none = request({ requests: { cpuMilli: 0, memoryBytes: 0 } });
    const oneDefault = host('a', { scoringRequested: { cpuMilli: 100, memoryBytes: 200 * 1024 ** 2 } });
    assert.equal(schedule(none, [oneDefault, host('b')]).host, 'b');
  });

  it('breaks ties by name', () => {
    assert.equal(schedule(request(), [host('c'), host('b'), host('d')]).host, 'b');
  });
});

describe('image keys', () => {
  it('matches a tag by normalized name and a pinned reference by digest', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const keys = hostImageKeys([
      { digest: `sha256:${'f'.repeat(64)}`, names: ['docker.io/library/nginx:1.27', `nginx@${digest}`] },
    ]);
    assert.ok(
      imageKeys('nginx:1.27').some((k) => keys.has(k)),
      'tag found by name',
    );
    assert.ok(
      imageKeys(`registry.local/x@${digest}`).some((k) => keys.has(k)),
      'digest found',
    );
    assert.ok(!imageKeys('nginx:1.28').some((k) => keys.has(k)), 'other tag not found');
  });

  it('uses the digest an Image object resolved a tag to', () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    assert.deepEqual(imageKeys('nginx:1.27', digest), [digest]);
    assert.deepEqual(imageKeys('nginx:1.27'), ['docker.io/library/nginx:1.27']);
  });

  it('skips names that are not references', () => {
    assert.deepEqual([...hostImageKeys([{ digest: 'sha256:z', names: ['<none>'] }])], ['sha256:z']);
  });
});

describe('amounts', () => {
  it('converts quantities to millicores and bytes, rounding up', () => {
    assert.deepEqual(amounts({ cpu: '500m', memory: '1Gi' }), { cpuMilli: 500, memoryBytes: GiB });
    assert.deepEqual(amounts({ cpu: 2, memory: '1.5k' }), { cpuMilli: 2000, memoryBytes: 1500 });
    assert.deepEqual(amounts({ cpu: '0.0001' }), { cpuMilli: 1, memoryBytes: 0 });
    assert.deepEqual(amounts(undefined), { cpuMilli: 0, memoryBytes: 0 });
  });

  it('leaves unset allocatable dimensions out', () => {
    assert.deepEqual(allocatableAmounts({ cpu: '1500m' }), { cpuMilli: 1500 });
    assert.deepEqual(allocatableAmounts(undefined), {});
  });
});

describe('migration targets', () => {
  it('never picks the source, and needs a Host that can restore for a checkpoint', () => {
    const hosts = [host('a', { checkpoint: true }), host('b'), host('c', { checkpoint: true })];
    const move = request({ migration: { avoidHost: 'a', needsCheckpoint: true } });
    assert.deepEqual(schedule(move, hosts), { host: 'c', feasible: 1 });
    const restart = request({ migration: { avoidHost: 'a', needsCheckpoint: false } });
    assert.equal(schedule(restart, hosts).host, 'b');
    const nowhere = schedule(move, [hosts[0]!, hosts[1]!]);
    assert.equal(nowhere.host, undefined);
    assert.equal(
      'message' in nowhere && nowhere.message,
      '0/2 hosts are available: 1 host cannot restore checkpoints, 1 host is the one the container moves from.',
    );
  });
});

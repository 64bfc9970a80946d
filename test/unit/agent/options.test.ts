import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAgentOptions } from '../../../src/agent/options.js';

test('flags win over environment variables, which win over defaults', () => {
  const o = parseAgentOptions(['--host-name', 'edge-1', '--pull-concurrency=5'], {
    GANTRY_AGENT_PULL_CONCURRENCY: '7',
    GANTRY_AGENT_CRI_SOCKET: '/run/k3s/containerd/containerd.sock',
  });
  assert.equal(o.hostName, 'edge-1');
  assert.equal(o.pullConcurrency, 5);
  assert.equal(o.criSocket, '/run/k3s/containerd/containerd.sock');
  assert.equal(o.leaseNamespace, 'gantry-system');
});

test('a bad value names the flag and says why', () => {
  assert.throws(() => parseAgentOptions(['--host-name', 'Bad_Name']), /--host-name: must be a DNS subdomain/);
  assert.throws(() => parseAgentOptions(['--reserved-cpu', 'lots']), /--reserved-cpu: must be a quantity/);
  assert.throws(() => parseAgentOptions(['--no-such-flag']), /Unknown option/);
  assert.throws(
    () => parseAgentOptions(['--image-gc-high-threshold-percent=70']),
    /--image-gc-low-threshold-percent: must not be above --image-gc-high-threshold-percent/,
  );
  assert.throws(
    () => parseAgentOptions(['--fence-after-seconds=15', '--renew-interval-seconds=10']),
    /--fence-after-seconds: must be 0 \(off\) or at least twice --renew-interval-seconds/,
  );
  assert.equal(parseAgentOptions(['--fence-after-seconds=20']).fenceAfterSeconds, 20);
  assert.throws(
    () => parseAgentOptions(['--container-log-max-size=0']),
    /--container-log-max-size: must be a quantity of at least 1 byte/,
  );
  assert.throws(() => parseAgentOptions(['--container-log-max-files=1']), /--container-log-max-files:/);
  assert.throws(() => parseAgentOptions(['--node-ip=host-1']), /--node-ip: must be an IPv4 or IPv6 address/);
  // The chart passes the node's address this way (status.hostIP).
  assert.equal(parseAgentOptions([], { GANTRY_AGENT_NODE_IP: '10.244.1.1' }).nodeIp, '10.244.1.1');
  assert.equal(parseAgentOptions([]).nodeIp, undefined);
});

test('container log rotation defaults to the kubelet defaults: 10Mi, 5 files, every 10 s', () => {
  const o = parseAgentOptions([]);
  assert.equal(o.containerLogMaxSize, 10 * 1024 * 1024);
  assert.equal(o.containerLogMaxFiles, 5);
  assert.equal(o.containerLogMonitorIntervalSeconds, 10);
  assert.equal(parseAgentOptions(['--container-log-max-size=64Ki']).containerLogMaxSize, 65536);
});

test('the cluster DNS flags go together, as the kubelet would be given them', () => {
  const o = parseAgentOptions(['--cluster-dns=10.96.0.10', '--cluster-domain=cluster.local']);
  assert.equal(o.clusterDns, '10.96.0.10');
  assert.equal(o.clusterDomain, 'cluster.local');
  assert.equal(parseAgentOptions([]).clusterDns, undefined, 'unset: containers keep their host resolv.conf');
  assert.throws(
    () => parseAgentOptions(['--cluster-dns=kube-dns', '--cluster-domain=cluster.local']),
    /--cluster-dns: must be an IP address/,
  );
  assert.throws(
    () => parseAgentOptions(['--cluster-dns=10.96.0.10']),
    /--cluster-dns: give --cluster-dns and --cluster-domain together/,
  );
  assert.throws(
    () => parseAgentOptions(['--cluster-domain=cluster.local']),
    /--cluster-dns: give --cluster-dns and --cluster-domain together/,
  );
  assert.throws(
    () => parseAgentOptions(['--cluster-dns=10.96.0.10', '--cluster-domain=Cluster_Local']),
    /--cluster-domain: must be a DNS domain/,
  );
});

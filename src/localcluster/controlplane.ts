// etcd, kube-apiserver, kube-controller-manager, and (for kubelet nodes) kube-scheduler and
// kube-proxy, on loopback, with RBAC and the Node authorizer on and client-certificate
// authentication.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Binaries } from './binaries.js';
import { type ClientCert, type Pki, ensureClientCert, pkiPaths, writeKubeconfig } from './pki.js';
import { livePid, run, startDaemon, waitFor } from './proc.js';

export const ports = {
  etcdClient: 23790,
  etcdPeer: 23800,
  apiserver: 6443,
  controllerManager: 10257,
  scheduler: 10259,
  proxyMetrics: 10249,
  proxyHealthz: 10256,
};
export const apiServerURL = `https://127.0.0.1:${ports.apiserver}`;

export interface Layout {
  dir: string;
  pids: string;
  logs: string;
}

function files(l: Layout, name: string) {
  return { pidFile: path.join(l.pids, `${name}.pid`), logFile: path.join(l.logs, `${name}.log`) };
}

/** HTTPS GET; resolves with the HTTP status (0 when unreachable). */
function httpsStatus(url: string, opts: https.RequestOptions): Promise<number> {
  return new Promise((resolve) => {
    const req = https.get(url, { ...opts, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/** GET on the apiserver with a client cert. */
export function apiGetStatus(pathname: string, pki: Pki, client: ClientCert): Promise<number> {
  return httpsStatus(`${apiServerURL}${pathname}`, {
    ca: fs.readFileSync(pki.caCert),
    cert: fs.readFileSync(client.cert),
    key: fs.readFileSync(client.key),
  });
}

export async function startEtcd(l: Layout, bins: Binaries): Promise<void> {
  const f = files(l, 'etcd');
  if (livePid(f.pidFile)) return;
  const client = `http://127.0.0.1:${ports.etcdClient}`;
  const peer = `http://127.0.0.1:${ports.etcdPeer}`;
  const pid = startDaemon(
    bins.etcd,
    [
      '--name=gantry',
      `--data-dir=${path.join(l.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=gantry=${peer}`,
      '--listen-metrics-urls=',
      // A test cluster: losing the last writes on a power cut is fine, waiting for fsync is not.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    f,
  );
  await waitFor(
    'etcd to answer /health',
    async () =>
      (await fetch(`${client}/health`)
        .then((r) => r.ok)
        .catch(() => false)) === true,
    { pid, logFile: f.logFile, timeoutMs: 30_000 },
  );
}

/**
 * The front proxy's own CA and client certificate: the apiserver presents it to aggregated API
 * servers (Gantry's subresources.gantry.dev), which believe its X-Remote-User headers only on a
 * connection with it. A CA apart from the cluster's, so no ordinary client certificate can pass.
 */
async function ensureFrontProxy(pki: Pki): Promise<{ ca: string; client: ClientCert }> {
  const fp = pkiPaths(path.join(pki.dir, 'front-proxy'));
  if (!fs.existsSync(fp.caCert)) {
    fs.mkdirSync(fp.dir, { recursive: true, mode: 0o700 });
    await run('openssl', [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-out',
      fp.caKey,
    ]);
    const subject = '/CN=gantry-local-front-proxy-ca';
    await run('openssl', [
      'req',
      '-x509',
      '-new',
      '-key',
      fp.caKey,
      '-subj',
      subject,
      '-days',
      '365',
      '-out',
      fp.caCert,
    ]);
  }
  return { ca: fp.caCert, client: await ensureClientCert(fp, 'front-proxy-client', 'front-proxy-client') };
}

export async function startApiserver(l: Layout, bins: Binaries, pki: Pki, admin: ClientCert): Promise<void> {
  const f = files(l, 'kube-apiserver');
  const frontProxy = await ensureFrontProxy(pki);
  const kubeletClient = await ensureClientCert(
    pki,
    'apiserver-kubelet-client',
    'kube-apiserver-kubelet-client',
    ['system:masters'],
  );
  if (!livePid(f.pidFile)) {
    startDaemon(
      bins.kubeApiserver,
      [
        `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
        '--bind-address=127.0.0.1',
        // Without it the apiserver refuses to run on loopback only.
        '--advertise-address=127.0.0.1',
        `--secure-port=${ports.apiserver}`,
        `--cert-dir=${path.join(l.dir, 'apiserver-certs')}`,
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caCert}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        // The Node authorizer and NodeRestriction confine each kubelet to its own node's objects.
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        // `kubectl logs` and `exec` on pods: the apiserver's identity at the kubelets.
        `--kubelet-client-certificate=${kubeletClient.cert}`,
        `--kubelet-client-key=${kubeletClient.key}`,
        // The apiserver listens on loopback, which Endpoints may not name: network.ts routes
        // the \`kubernetes\` Service's address to it instead.
        '--endpoint-reconciler-type=none',
        // Nodes here have no resolvable names: reach kubelets at their addresses.
        '--kubelet-preferred-address-types=InternalIP',
        // Aggregated APIs: the front proxy's identity and the headers naming the user, and
        // endpoints reached directly, not through kube-proxy: Gantry's server, a process of this
        // machine, is at the address network.ts routes to its loopback port.
        `--requestheader-client-ca-file=${frontProxy.ca}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${frontProxy.client.cert}`,
        `--proxy-client-key-file=${frontProxy.client.key}`,
        '--enable-aggregator-routing=true',
        '--profiling=false',
        '--v=1',
      ],
      f,
    );
  }
  await waitApiserverReady(l, pki, admin);
}

/** Waits for /readyz, and for RBAC's bootstrap roles (the admin needs them before it can do anything). */
export async function waitApiserverReady(l: Layout, pki: Pki, admin: ClientCert): Promise<void> {
  const f = files(l, 'kube-apiserver');
  await waitFor(
    'kube-apiserver to answer /readyz',
    async () => (await apiGetStatus('/readyz', pki, admin)) === 200,
    {
      pid: livePid(f.pidFile),
      logFile: f.logFile,
      timeoutMs: 90_000,
    },
  );
}

/** A kubeconfig for a control-plane component, with a client certificate for its RBAC user. */
export async function componentKubeconfig(l: Layout, pki: Pki, name: string, user: string): Promise<string> {
  const cert = await ensureClientCert(pki, name, user);
  const kubeconfig = path.join(l.dir, `${name}.kubeconfig`);
  writeKubeconfig(kubeconfig, apiServerURL, pki, cert, user);
  return kubeconfig;
}

/**
 * The controller-manager with Kubernetes' default controllers (garbage collection, namespaces,
 * service accounts, RBAC role aggregation, Deployments, DaemonSets...). Without kubelets, node
 * lifecycle is left out: it would only taint Nodes that no kubelet ever reports on.
 */
export async function startControllerManager(
  l: Layout,
  bins: Binaries,
  pki: Pki,
  kubelets: boolean,
): Promise<void> {
  const f = files(l, 'kube-controller-manager');
  if (livePid(f.pidFile)) return;
  const kubeconfig = await componentKubeconfig(
    l,
    pki,
    'controller-manager',
    'system:kube-controller-manager',
  );
  const pid = startDaemon(
    bins.kubeControllerManager,
    [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.controllerManager}`,
      '--leader-elect=false',
      `--controllers=${kubelets ? '*' : '*,-node-lifecycle-controller'}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      `--root-ca-file=${pki.caCert}`,
      // Each controller acts as its own service account, with the RBAC roles Kubernetes bootstraps for it.
      '--use-service-account-credentials=true',
      '--v=1',
    ],
    f,
  );
  await waitFor(
    'kube-controller-manager to answer /healthz',
    // It serves a self-signed certificate of its own, on loopback.
    async () =>
      (await httpsStatus(`https://127.0.0.1:${ports.controllerManager}/healthz`, {
        rejectUnauthorized: false,
      })) === 200,
    { pid, logFile: f.logFile, timeoutMs: 30_000 },
  );
}

/** The scheduler places Pods on the kubelet nodes (Gantry's own scheduler places Containers). */
export async function startScheduler(l: Layout, bins: Binaries, pki: Pki): Promise<void> {
  const f = files(l, 'kube-scheduler');
  if (livePid(f.pidFile)) return;
  const kubeconfig = await componentKubeconfig(l, pki, 'scheduler', 'system:kube-scheduler');
  const pid = startDaemon(
    bins.kubeScheduler,
    [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.scheduler}`,
      '--leader-elect=false',
      '--v=1',
    ],
    f,
  );
  await waitFor(
    'kube-scheduler to answer /healthz',
    async () =>
      (await httpsStatus(`https://127.0.0.1:${ports.scheduler}/healthz`, { rejectUnauthorized: false })) ===
      200,
    { pid, logFile: f.logFile, timeoutMs: 30_000 },
  );
}

/**
 * One kube-proxy for the machine (iptables mode): the nodes share its network stack, so one set
 * of rules serves them all. Service traffic is masqueraded, so a reply from a pod on the same
 * bridge as its client comes back through the rules rather than straight across the bridge.
 */
export async function startKubeProxy(
  l: Layout,
  bins: Binaries,
  pki: Pki,
  opts: { hostname: string; clusterCIDR: string },
): Promise<void> {
  const f = files(l, 'kube-proxy');
  if (livePid(f.pidFile)) return;
  const kubeconfig = await componentKubeconfig(l, pki, 'kube-proxy', 'system:kube-proxy');
  const pid = startDaemon(
    bins.kubeProxy,
    [
      `--kubeconfig=${kubeconfig}`,
      `--hostname-override=${opts.hostname}`,
      `--cluster-cidr=${opts.clusterCIDR}`,
      '--proxy-mode=iptables',
      '--masquerade-all',
      `--metrics-bind-address=127.0.0.1:${ports.proxyMetrics}`,
      `--healthz-bind-address=127.0.0.1:${ports.proxyHealthz}`,
      // Leave the machine's conntrack limits and loopback routing as they are.
      '--conntrack-max-per-core=0',
      '--iptables-localhost-nodeports=false',
      '--v=1',
    ],
    f,
  );
  await waitFor(
    'kube-proxy to answer /healthz',
    async () => {
      const r = await fetch(`http://127.0.0.1:${ports.proxyHealthz}/healthz`).catch(() => undefined);
      return r !== undefined && r.status < 500;
    },
    { pid, logFile: f.logFile, timeoutMs: 30_000 },
  );
}

/** Removes kube-proxy's iptables rules (after it stopped). */
export async function cleanUpKubeProxy(bins: Binaries): Promise<void> {
  await run(bins.kubeProxy, ['--cleanup', '--proxy-mode=iptables']).catch(() => undefined);
}

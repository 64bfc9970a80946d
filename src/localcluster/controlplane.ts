// etcd, kube-apiserver and kube-controller-manager on loopback, run the way envtest runs them,
// with RBAC on and client-certificate authentication.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Binaries } from './binaries.js';
import { type ClientCert, type Pki, ensureClientCert, writeKubeconfig } from './pki.js';
import { livePid, startDaemon, waitFor } from './proc.js';

export const ports = { etcdClient: 23790, etcdPeer: 23800, apiserver: 6443, controllerManager: 10257 };
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

export async function startApiserver(l: Layout, bins: Binaries, pki: Pki, admin: ClientCert): Promise<void> {
  const f = files(l, 'kube-apiserver');
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
        '--authorization-mode=RBAC',
        '--allow-privileged=true',
        // No kubelet or token controller mounts tokens into pods here.
        '--disable-admission-plugins=ServiceAccount',
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

/** Garbage collection (ownerReferences) and namespace deletion need the controller-manager. */
export async function startControllerManager(l: Layout, bins: Binaries, pki: Pki): Promise<void> {
  const f = files(l, 'kube-controller-manager');
  if (livePid(f.pidFile)) return;
  const cert = await ensureClientCert(pki, 'controller-manager', 'system:kube-controller-manager');
  const kubeconfig = path.join(l.dir, 'controller-manager.kubeconfig');
  writeKubeconfig(kubeconfig, apiServerURL, pki, cert, 'system:kube-controller-manager');
  const pid = startDaemon(
    bins.kubeControllerManager,
    [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.controllerManager}`,
      '--leader-elect=false',
      // Only what a cluster without kubelets needs; node lifecycle would only taint our Nodes.
      '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller',
      `--service-account-private-key-file=${pki.saKey}`,
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

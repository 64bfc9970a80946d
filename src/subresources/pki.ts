// The certificates of Gantry's aggregated API, made and kept here rather than by Helm (genCA in a
// template): the rendered chart and manifests/ stay the same on every render, Argo CD does not
// see new certificates at every sync, and no private key lands in Helm's release records. Every
// replica runs this; writes carry the resourceVersion they were decided on, so racing replicas
// settle on one Secret. A CA (ten years) issues, for a year each and renewed a month before the
// end: this server's serving certificate (for <service>.<namespace>.svc), its client certificate
// towards the agents, and the agents' serving certificate, written into their namespace. The CA
// goes into the APIService's caBundle, so the apiserver can verify this server.
import crypto from 'node:crypto';
import {
  ApiregistrationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from '@kubernetes/client-node';
import type { KubeClient } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import { agentServerName, subresourcesClientName, type TlsIdentity } from '../kube/streamtls.js';
import type { Logger } from '../obs/logger.js';
import { issueCertificate, type KeyPair, replacementReason } from './x509.js';

export interface PkiOptions {
  namespace: string;
  serviceName: string;
  apiService: string;
  pkiSecret: string;
  agentNamespace: string;
  agentTlsSecret: string;
}

/** What this server presents: to the apiserver (serving) and to the agents (client, with their CA). */
export interface PkiState {
  serving: KeyPair;
  agentClient: TlsIdentity;
  /** The APIService exists and carries the CA. */
  registered: boolean;
}

const LEAF_DAYS = 365;
const RENEW_DAYS = 30;

const decode = (s: V1Secret | undefined, k: string) =>
  s?.data?.[k] ? Buffer.from(s.data[k], 'base64').toString('utf8') : undefined;
const encode = (v: Record<string, string>) =>
  Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Buffer.from(x).toString('base64')]));

export class Pki {
  private readonly core: CoreV1Api;
  private readonly apiServices: ApiregistrationV1Api;

  constructor(
    private readonly o: PkiOptions,
    client: KubeClient,
    private readonly log: Logger,
  ) {
    this.core = client.api(CoreV1Api);
    this.apiServices = client.api(ApiregistrationV1Api);
  }

  private servingNames(): string[] {
    const { serviceName: s, namespace: n } = this.o;
    return [s, `${s}.${n}`, `${s}.${n}.svc`, `${s}.${n}.svc.cluster.local`];
  }

  private async read(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
  }

  /** Creates or replaces a Secret as decided on `live`; false when another writer got there first. */
  private async write(live: V1Secret | undefined, body: V1Secret): Promise<boolean> {
    const { namespace, name } = body.metadata as { namespace: string; name: string };
    try {
      if (live) {
        body.metadata!.resourceVersion = live.metadata?.resourceVersion;
        await this.core.replaceNamespacedSecret({ namespace, name, body });
      } else await this.core.createNamespacedSecret({ namespace, body });
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  /**
   * Makes every certificate current and returns this server's, or undefined when another replica
   * wrote first (call again: the next round reads what it wrote).
   */
  async ensure(): Promise<PkiState | undefined> {
    const live = await this.read(this.o.namespace, this.o.pkiSecret);
    const pair = (prefix: string) => ({
      cert: decode(live, `${prefix}.crt`),
      key: decode(live, `${prefix}.key`),
    });
    let ca = pair('ca') as KeyPair;
    const caReason =
      ca.cert && ca.key ? replacementReason(ca, ca, { minRemainingDays: RENEW_DAYS }) : 'missing';
    if (caReason) {
      this.log.info('Issuing the CA of the aggregated API and its agents', { reason: caReason });
      ca = issueCertificate({ commonName: 'gantry-subresources-ca', isCA: true, validDays: 3650 });
    }
    const renewed: string[] = [];
    const current = (what: string, have: Partial<KeyPair>, make: () => KeyPair, dnsNames?: string[]) => {
      const reason = caReason ?? replacementReason(have, ca, { dnsNames, minRemainingDays: RENEW_DAYS });
      if (!reason) return have as KeyPair;
      renewed.push(`${what} (${reason})`);
      return make();
    };
    const serving = current(
      'serving certificate',
      pair('tls'),
      () =>
        issueCertificate({
          commonName: `${this.o.serviceName}.${this.o.namespace}.svc`,
          dnsNames: this.servingNames(),
          usages: ['serverAuth'],
          validDays: LEAF_DAYS,
          issuer: ca,
        }),
      this.servingNames(),
    );
    const client = current('client certificate', pair('client'), () =>
      issueCertificate({
        commonName: subresourcesClientName,
        usages: ['clientAuth'],
        validDays: LEAF_DAYS,
        issuer: ca,
      }),
    );
    if (renewed.length > 0) {
      this.log.info('Writing the certificates of the aggregated API', { renewed });
      const data = encode({
        'ca.crt': ca.cert,
        'ca.key': ca.key,
        'tls.crt': serving.cert,
        'tls.key': serving.key,
        'client.crt': client.cert,
        'client.key': client.key,
      });
      const body: V1Secret = {
        metadata: { name: this.o.pkiSecret, namespace: this.o.namespace },
        type: 'Opaque',
        data,
      };
      if (!(await this.write(live, body))) return undefined;
    }
    await this.ensureAgentSecret(ca);
    const registered = await this.ensureCaBundle(ca.cert);
    return { serving, agentClient: { ca: ca.cert, cert: client.cert, key: client.key }, registered };
  }

  /** The agents' serving certificate, in their namespace, with the CA that lets them check callers. */
  private async ensureAgentSecret(ca: KeyPair): Promise<void> {
    const live = await this.read(this.o.agentNamespace, this.o.agentTlsSecret);
    const have = { cert: decode(live, 'tls.crt'), key: decode(live, 'tls.key') };
    const reason =
      decode(live, 'ca.crt') !== ca.cert
        ? 'another CA'
        : replacementReason(have, ca, { dnsNames: [agentServerName], minRemainingDays: RENEW_DAYS });
    if (!reason) return;
    this.log.info("Writing the agents' serving certificate", { reason });
    const agent = issueCertificate({
      commonName: agentServerName,
      dnsNames: [agentServerName],
      usages: ['serverAuth'],
      validDays: LEAF_DAYS,
      issuer: ca,
    });
    await this.write(live, {
      metadata: { name: this.o.agentTlsSecret, namespace: this.o.agentNamespace },
      type: 'kubernetes.io/tls',
      data: encode({ 'ca.crt': ca.cert, 'tls.crt': agent.cert, 'tls.key': agent.key }),
    });
  }

  /** The CA into the APIService, so the apiserver verifies this server (absent: not registered yet). */
  private async ensureCaBundle(caCert: string): Promise<boolean> {
    const bundle = Buffer.from(caCert).toString('base64');
    const live = await this.apiServices.readAPIService({ name: this.o.apiService }).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    if (!live) {
      this.log.warn('The APIService is not registered yet; the apiserver cannot reach this server', {
        apiService: this.o.apiService,
      });
      return false;
    }
    const current = live.spec?.caBundle ? Buffer.from(live.spec.caBundle, 'base64').toString('utf8') : '';
    if (current === caCert) return true;
    await this.apiServices.patchAPIService(
      { name: this.o.apiService, body: { spec: { caBundle: bundle } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    this.log.info('Gave the APIService its CA', {
      apiService: this.o.apiService,
      fingerprint: new crypto.X509Certificate(caCert).fingerprint256,
    });
    return true;
  }
}

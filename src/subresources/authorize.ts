// Whether the user may: a SubjectAccessReview on the Container's subresource in Gantry's own API
// group, asked of the apiserver for every request. So RBAC on gantry.dev decides, as it does for
// pods/log and pods/exec: whoever may get containers/log in a namespace (the `view` role, as the
// chart aggregates it there) reads its Containers' output; whoever may create containers/exec
// (`edit`) runs commands in them; whoever may list Containers sees what they use (top). The apiserver lets every authenticated user
// through to this API: this check is the one that counts.
import { AuthorizationV1Api } from '@kubernetes/client-node';
import { GROUP } from '../api/v1alpha1/index.js';
import type { KubeClient } from '../kube/client.js';
import { HttpError } from '../kube/streaming.js';
import type { UserInfo } from './frontproxy.js';

export interface Access {
  verb: 'get' | 'create' | 'list';
  /** Unset: the containers themselves (top lists them). */
  subresource?: 'log' | 'exec';
  /** Unset: every namespace. */
  namespace?: string;
  name?: string;
}

/** The refusal in the apiserver's own words, with what would grant it. */
export function refusal(user: UserInfo, a: Access, reason?: string): string {
  const resource = a.subresource ? `containers/${a.subresource}` : 'containers';
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  return (
    `User "${user.username}" cannot ${a.verb} resource "${resource}" in API group "${GROUP}" ` +
    `${scope}${reason ? `: ${reason}` : ''}`
  );
}

export class Authorizer {
  private readonly api: AuthorizationV1Api;

  constructor(client: KubeClient) {
    this.api = client.api(AuthorizationV1Api);
  }

  /** Resolves when allowed; HttpError 403 saying what is missing otherwise. */
  async check(user: UserInfo, a: Access): Promise<void> {
    const review = await this.api.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          resourceAttributes: {
            group: GROUP,
            resource: 'containers',
            subresource: a.subresource,
            verb: a.verb,
            namespace: a.namespace,
            name: a.name,
          },
        },
      },
    });
    if (!review.status?.allowed) throw new HttpError(403, refusal(user, a, review.status?.reason));
  }
}

// Image references as Docker and the kubelet understand them: [registry[:port]/]path[:tag][@sha256:hex].
// `nginx` means docker.io/library/nginx:latest; a digest pins the content. Pure functions, no I/O.

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const ipv6 = '\\[[a-fA-F0-9:]+\\]';
const domain = `(?:${domainName}|${ipv6})(?::[0-9]+)?`;
const pathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const tag = '[\\w][\\w.-]{0,127}';
const digest = 'sha256:[a-f0-9]{64}';

/** The reference grammar as one anchored pattern (valid in both JavaScript and Go's RE2, for the CRD). */
export const IMAGE_REFERENCE_PATTERN = `^(?:${domain}/)?${pathComponent}(?:/${pathComponent})*(?::${tag})?(?:@${digest})?$`;
const IMAGE_REFERENCE_RE = new RegExp(IMAGE_REFERENCE_PATTERN);

export const DIGEST_PATTERN = `^${digest}$`;
const DIGEST_SUFFIX_RE = new RegExp(`@${digest}$`);

/** A reference that does not parse, in Docker's words; `{ref}` stands for the reference. */
export interface ImageReferenceProblem {
  /** The test in CEL, where `self` is the reference (for the CRD's rule, in template.ts). */
  cel: string;
  /** The same test in TypeScript. */
  test: (ref: string) => boolean;
  message: string;
}

/** ASCII letters only, as CEL's lowerAscii(). */
function lowerAscii(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** What can be wrong with an invalid reference, the first that applies told (the apiserver says the same). */
export const IMAGE_REFERENCE_PROBLEMS: ImageReferenceProblem[] = [
  {
    cel: "self.contains(' ')",
    test: (ref) => ref.includes(' '),
    message: 'invalid reference format: "{ref}" contains a space (a tag follows a colon, as in nginx:1.27)',
  },
  {
    // Only the repository's case is wrong: a registry or a tag may have capitals, a path not.
    cel: `self.lowerAscii().matches(r'${IMAGE_REFERENCE_PATTERN}')`,
    test: (ref) => IMAGE_REFERENCE_RE.test(lowerAscii(ref)),
    message: 'invalid reference format: repository name must be lowercase: "{ref}"',
  },
  {
    cel: `self.contains('@') && !self.matches(r'@${digest}$')`,
    test: (ref) => ref.includes('@') && !DIGEST_SUFFIX_RE.test(ref),
    message:
      'invalid reference format: "{ref}" has a malformed digest (@sha256: and 64 lower-case hex digits)',
  },
];

/** The grammar in words. */
export const IMAGE_REFERENCE_FORMS =
  '[registry[:port]/]name[:tag][@sha256:<64 hex digits>], as in nginx:1.27 or ghcr.io/org/app:v2 ' +
  '(name in lower case, a tag of at most 128 characters)';

/** What is said of an invalid reference none of IMAGE_REFERENCE_PROBLEMS applies to. */
export const IMAGE_REFERENCE_FORMAT = `invalid reference format: "{ref}" is not ${IMAGE_REFERENCE_FORMS}`;

/** Why `ref` is not an image reference, as Docker would put it; undefined when it is one. */
export function imageReferenceProblem(ref: string): string | undefined {
  if (IMAGE_REFERENCE_RE.test(ref)) return undefined;
  const message = IMAGE_REFERENCE_PROBLEMS.find((p) => p.test(ref))?.message ?? IMAGE_REFERENCE_FORMAT;
  return message.split('{ref}').join(ref);
}

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_NAMESPACE = 'library';
export const DEFAULT_TAG = 'latest';

export interface ImageReference {
  /** Registry host, with port if any; docker.io when the reference names none. */
  registry: string;
  /** Repository path inside the registry, e.g. library/nginx. */
  path: string;
  tag?: string;
  /** `sha256:<hex>` when the reference pins a digest. */
  digest?: string;
}

export function isImageReference(ref: string): boolean {
  return IMAGE_REFERENCE_RE.test(ref);
}

/**
 * Parses and normalises a reference the way Docker does: the first component is a registry only if it
 * contains '.' or ':' or is `localhost`; docker.io paths without a '/' get `library/`; a reference with
 * neither tag nor digest gets `latest`. Throws on a malformed reference.
 */
export function parseImageReference(ref: string): ImageReference {
  const problem = imageReferenceProblem(ref);
  if (problem) throw new Error(problem);
  let rest = ref;
  let digestPart: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digestPart = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A tag follows the last ':' only if no '/' comes after it (otherwise that ':' belonged to a port).
  let tagPart: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tagPart = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  const hasRegistry =
    slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  let registry = hasRegistry ? first : DEFAULT_REGISTRY;
  let path = hasRegistry ? rest.slice(slash + 1) : rest;
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !path.includes('/')) path = `${OFFICIAL_NAMESPACE}/${path}`;
  if (tagPart === undefined && digestPart === undefined) tagPart = DEFAULT_TAG;
  return {
    registry,
    path,
    ...(tagPart !== undefined ? { tag: tagPart } : {}),
    ...(digestPart ? { digest: digestPart } : {}),
  };
}

/** registry/path, e.g. docker.io/library/nginx. */
export function repository(ref: ImageReference): string {
  return `${ref.registry}/${ref.path}`;
}

/** The fully qualified form: `nginx` -> docker.io/library/nginx:latest. */
export function formatImageReference(ref: ImageReference): string {
  return (
    repository(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '')
  );
}

export function normalizeImageReference(ref: string): string {
  return formatImageReference(parseImageReference(ref));
}

/** The short form Docker prints: docker.io/library/nginx:latest -> nginx:latest. */
export function familiarImageReference(ref: string): string {
  const full = normalizeImageReference(ref);
  const prefix = `${DEFAULT_REGISTRY}/`;
  if (!full.startsWith(prefix)) return full;
  const rest = full.slice(prefix.length);
  return rest.startsWith(`${OFFICIAL_NAMESPACE}/`) ? rest.slice(OFFICIAL_NAMESPACE.length + 1) : rest;
}

/** The digest-pinned form the runtime should pull once a tag is resolved: repo@sha256:... */
export function pinnedImageReference(ref: string, resolvedDigest: string): string {
  return `${repository(parseImageReference(ref))}@${resolvedDigest}`;
}

/** The kubelet's rule for an unset pull policy: Always for tag `latest` (or no tag, no digest), else IfNotPresent. */
export function defaultPullPolicy(ref: string): 'Always' | 'IfNotPresent' {
  return parseImageReference(ref).tag === DEFAULT_TAG ? 'Always' : 'IfNotPresent';
}

/**
 * Cluster name rules: a lowercase DNS label that both providers accept, and not a reserved word.
 */
import type { Provider } from './types.js';
import { usageError } from './errors.js';

/** A node container's hostname is its name, and a hostname is a DNS label: sethostname fails beyond 63. */
export const HOSTNAME_LIMIT = 63;

/**
 * The longest node container name each provider derives from NAME (k3d: k3d-NAME-serverlb,
 * k3d-NAME-server-6, k3d-NAME-agent-19; kind: NAME-control-plane7, NAME-worker20,
 * NAME-external-load-balancer).
 */
export const LONGEST_NODE_NAME: Record<Provider, (name: string) => string> = {
  k3d: (name) => `k3d-${name}-serverlb`,
  kind: (name) => `${name}-external-load-balancer`,
};

/** k3d's own limit for cluster names (its validation refuses longer ones). */
export const K3D_OWN_LIMIT = 32;

/**
 * The longest NAME each provider takes for a new cluster: k3d 32 (its own rule; its node names then stay well
 * inside 63), kind 40 (NAME-external-load-balancer must fit in 63 characters).
 * These, and every other rule below, reach the scripts through scripts/lib/rules.sh (`npm run gen:rules`).
 */
export const NAME_LIMIT: Record<Provider, number> = {
  k3d: Math.min(K3D_OWN_LIMIT, HOSTNAME_LIMIT - LONGEST_NODE_NAME.k3d('').length),
  kind: HOSTNAME_LIMIT - LONGEST_NODE_NAME.kind('').length,
};

/** Why a provider's new names stop at NAME_LIMIT, for the error line. */
export const NAME_LIMIT_RULE: Record<Provider, string> = {
  k3d: `k3d's own limit for cluster names`,
  kind: `its longest node container, NAME-external-load-balancer, is also a hostname and must fit in ${HOSTNAME_LIMIT}`,
};

/**
 * The longest NAME of a cluster that exists already (adopt, and the scripts' delete, start, stop, status,
 * import-image, adopt): k3d makes no name longer than its own limit; a kind cluster made without an external load
 * balancer (one control plane) can have any DNS label, up to 63.
 */
export const EXISTING_NAME_LIMIT: Record<Provider, number> = {
  k3d: K3D_OWN_LIMIT,
  kind: HOSTNAME_LIMIT,
};

/** Why an existing cluster's name stops at EXISTING_NAME_LIMIT, for the error line. */
export const EXISTING_NAME_LIMIT_RULE: Record<Provider, string> = {
  k3d: NAME_LIMIT_RULE.k3d,
  kind: 'a DNS label',
};

/**
 * The characters of a name, as the inside of a bracket expression that means the same in a JavaScript RegExp and
 * in bash's [[ =~ ]] (POSIX ERE, LC_ALL=C): the first character, then every character. A name also never ends
 * with NAME_NO_END and never contains NAME_NO_RUN.
 */
export const NAME_FIRST_CHARS = 'a-z';
export const NAME_CHARS = 'a-z0-9-';
export const NAME_NO_END = '-';
export const NAME_NO_RUN = '--';

/** The rules a name's characters break, for the error line (NAME_NO_END and NAME_NO_RUN read `must not …`). */
export const NAME_EMPTY_RULE = 'must not be empty';
export const NAME_FIRST_RULE = 'must start with a lowercase letter';
export const NAME_CHARS_RULE = 'only lowercase letters, digits and "-" are allowed (a DNS label)';

/**
 * Names that collide with kindler itself, static routes, or git conventions. No cluster is ever created with one
 * (nor by create_env.sh called directly); a cluster that exists with one (made by hand, then adopted) can still be
 * adopted, deleted, started, stopped and inspected.
 */
export const RESERVED_NAMES: readonly string[] = [
  'devops', 'kindler', 'haproxy', 'portainer', 'argocd', 'git', 'gitea', 'main', 'master', 'default',
  'kind', 'k3d', 'k3s-default', 'docker', 'registry', 'localhost', 'admin', 'api', 'www', 'archive', 'head', 'origin',
];

/** Why a reserved name is refused, for the error line. */
export const RESERVED_NAME_RULE = 'kindler itself, its static routes or git use it';

/** Whether a name is for a cluster about to be created (`new`), or names one that exists already (`existing`). */
export type NameUse = 'new' | 'existing';

const FIRST_RE = new RegExp(`^[${NAME_FIRST_CHARS}]`);
const CHARS_RE = new RegExp(`^[${NAME_CHARS}]+$`);

/**
 * Returns null when valid, else one line naming the rule that is broken. A `new` name (the default) has the
 * provider's NAME_LIMIT and must not be reserved; an `existing` one has EXISTING_NAME_LIMIT and may be reserved.
 * The characters are checked before the length, so the length is only ever counted over ASCII (kd_check_name
 * counts bytes) and both sides name the same rule.
 */
export function nameProblem(name: string, provider: Provider, use: NameUse = 'new'): string | null {
  if (name.length === 0) return `name: ${NAME_EMPTY_RULE}`;
  if (!FIRST_RE.test(name)) return `name: ${NAME_FIRST_RULE}`;
  if (!CHARS_RE.test(name)) return `name: ${NAME_CHARS_RULE}`;
  const limit = (use === 'new' ? NAME_LIMIT : EXISTING_NAME_LIMIT)[provider];
  const why = (use === 'new' ? NAME_LIMIT_RULE : EXISTING_NAME_LIMIT_RULE)[provider];
  if (name.length > limit) return `name: must be at most ${limit} characters for ${provider}: ${why} (got ${name.length})`;
  if (name.endsWith(NAME_NO_END)) return `name: must not end with "${NAME_NO_END}"`;
  if (name.includes(NAME_NO_RUN)) return `name: must not contain "${NAME_NO_RUN}"`;
  if (use === 'new' && RESERVED_NAMES.includes(name)) return `name: "${name}" is reserved (${RESERVED_NAME_RULE})`;
  return null;
}

/** Throws a usage error when the name breaks a rule. */
export function assertName(name: string, provider: Provider, use: NameUse = 'new'): void {
  const p = nameProblem(name, provider, use);
  if (p) throw usageError(p, 'name');
}

/** Looser check for referring to an existing record (any provider limit). */
export function looksLikeName(name: string): boolean {
  return /^[a-z][a-z0-9-]{0,62}$/.test(name);
}

/** The kube context a provider gives a cluster. */
export function kubeContextFor(provider: Provider, name: string): string {
  return provider === 'k3d' ? `k3d-${name}` : `kind-${name}`;
}

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
 * NAME-external-load-balancer). scripts/lib/common.sh (kd_check_name) holds the same limits.
 */
export const LONGEST_NODE_NAME: Record<Provider, (name: string) => string> = {
  k3d: (name) => `k3d-${name}-serverlb`,
  kind: (name) => `${name}-external-load-balancer`,
};

/** k3d's own limit for cluster names (its validation refuses longer ones). */
export const K3D_OWN_LIMIT = 32;

/**
 * The longest NAME each provider takes: k3d 32 (its own rule; its node names then stay well inside 63),
 * kind 40 (NAME-external-load-balancer must fit in 63 characters).
 */
export const NAME_LIMIT: Record<Provider, number> = {
  k3d: Math.min(K3D_OWN_LIMIT, HOSTNAME_LIMIT - LONGEST_NODE_NAME.k3d('').length),
  kind: HOSTNAME_LIMIT - LONGEST_NODE_NAME.kind('').length,
};

/** Why a provider's names stop at NAME_LIMIT, for the error line. */
const LIMIT_RULE: Record<Provider, string> = {
  k3d: `k3d's own limit for cluster names`,
  kind: `its longest node container, NAME-external-load-balancer, is also a hostname and must fit in ${HOSTNAME_LIMIT}`,
};

/** Names that collide with kindler itself, static routes, or git conventions. */
export const RESERVED_NAMES: readonly string[] = [
  'devops', 'kindler', 'haproxy', 'portainer', 'argocd', 'git', 'gitea', 'main', 'master', 'default',
  'kind', 'k3d', 'k3s-default', 'docker', 'registry', 'localhost', 'admin', 'api', 'www', 'archive', 'head', 'origin',
];

/** Returns null when valid, else one line naming the rule that is broken. */
export function nameProblem(name: string, provider: Provider): string | null {
  if (name.length === 0) return 'name: must not be empty';
  const limit = NAME_LIMIT[provider];
  if (name.length > limit) return `name: must be at most ${limit} characters for ${provider}: ${LIMIT_RULE[provider]} (got ${name.length})`;
  if (!/^[a-z]/.test(name)) return 'name: must start with a lowercase letter';
  if (!/^[a-z0-9-]+$/.test(name)) return 'name: only lowercase letters, digits and "-" are allowed (a DNS label)';
  if (name.endsWith('-')) return 'name: must not end with "-"';
  if (name.includes('--')) return 'name: must not contain "--"';
  if (RESERVED_NAMES.includes(name)) return `name: "${name}" is reserved`;
  return null;
}

/** Throws a usage error when the name breaks a rule. */
export function assertName(name: string, provider: Provider): void {
  const p = nameProblem(name, provider);
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

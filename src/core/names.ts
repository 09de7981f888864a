/**
 * Cluster name rules: a lowercase DNS label that both providers accept, and not a reserved word.
 */
import type { Provider } from './types.js';
import { usageError } from './errors.js';

/** k3d caps names at 32 characters; kind accepts more but a DNS label stops at 63. */
export const NAME_LIMIT: Record<Provider, number> = { k3d: 32, kind: 63 };

/** Names that collide with kindler itself, static routes, or git conventions. */
export const RESERVED_NAMES: readonly string[] = [
  'devops', 'kindler', 'haproxy', 'portainer', 'argocd', 'git', 'gitea', 'main', 'master', 'default',
  'kind', 'k3d', 'k3s-default', 'docker', 'registry', 'localhost', 'admin', 'api', 'www', 'archive', 'head', 'origin',
];

/** Returns null when valid, else one line naming the rule that is broken. */
export function nameProblem(name: string, provider: Provider): string | null {
  if (name.length === 0) return 'name: must not be empty';
  const limit = NAME_LIMIT[provider];
  if (name.length > limit) return `name: must be at most ${limit} characters for ${provider} (got ${name.length})`;
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

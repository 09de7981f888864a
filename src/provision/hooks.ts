/**
 * Registration hooks: executables in `<hooksDir>/post-create.d/` and `post-delete.d/`, run in name
 * order after the main steps with the cluster's facts in KINDLER_* environment variables.
 */
import { readdirSync, statSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { registerOf, type Cluster } from '../core/types.js';

export type HookPhase = 'post-create' | 'post-delete';

/** The executable hook files of a phase, in order (non-executable files are not hooks: that is how they are turned off). */
export function listHooks(hooksDir: string, phase: HookPhase): string[] {
  const dir = join(hooksDir, `${phase}.d`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.') && !n.endsWith('~') && !n.endsWith('.md'))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        if (!statSync(p).isFile()) return false;
        accessSync(p, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** The facts a hook gets. No secrets: credentials for a hook's own tool come from that tool's config. */
export function hookEnv(c: Cluster, domain: string | undefined, taskId: string, phase: HookPhase): Record<string, string> {
  return {
    KINDLER_HOOK_PHASE: phase,
    KINDLER_TASK_ID: taskId,
    KINDLER_CLUSTER_NAME: c.name,
    KINDLER_CLUSTER_PROVIDER: c.provider,
    KINDLER_CLUSTER_OWNER: c.owner,
    KINDLER_CLUSTER_DOMAIN: domain ?? '',
    KINDLER_CLUSTER_KUBECONFIG: c.kubeconfig,
    KINDLER_CLUSTER_KUBE_CONTEXT: c.kubeContext,
    KINDLER_CLUSTER_NODE_ADDRESS: c.nodeAddress ?? '',
    KINDLER_CLUSTER_HTTP_PORT: String(c.httpPort),
    KINDLER_CLUSTER_HTTPS_PORT: String(c.httpsPort),
    KINDLER_CLUSTER_API_PORT: String(c.apiPort),
    KINDLER_CLUSTER_INGRESS_NODE_PORT: c.ingressNodePort ? String(c.ingressNodePort) : '',
    KINDLER_API_SERVER: `https://127.0.0.1:${c.apiPort}`,
    KINDLER_API_SERVER_INTERNAL: apiServerInternal(c),
    KINDLER_REGISTER: registerOf(c).join(','),
  };
}

/**
 * The API server as seen from inside Docker: the first server / control-plane node's address on the cluster's
 * docker network (what create and start read with docker inspect), port 6443. The host-side address
 * (https://127.0.0.1:API_PORT) is unreachable from containers such as Argo CD's or Portainer's. Empty while the
 * address is unknown.
 */
export function apiServerInternal(c: Pick<Cluster, 'nodeAddress'>): string {
  const a = c.nodeAddress ?? '';
  const v = isIP(a);
  if (v === 4) return `https://${a}:6443`;
  if (v === 6) return `https://[${a}]:6443`;
  return '';
}

/**
 * How each task kind maps onto the provisioning scripts in scripts/ (flags only, no positional guessing).
 */
import { join } from 'node:path';
import type { Config } from '../core/config.js';
import type { Cluster, TaskKind } from '../core/types.js';

export interface ScriptCall { script: string; args: string[] }

/** The script and flags for a task of `kind` on `c`. */
export function scriptFor(cfg: Config, kind: TaskKind, c: Cluster, params: Record<string, unknown> = {}): ScriptCall {
  const s = (f: string) => join(cfg.scriptsDir, f);
  const base = ['--name', c.name, '--provider', c.provider];
  switch (kind) {
    case 'create': {
      const args = [
        ...base,
        '--servers', String(c.servers),
        '--agents', String(c.agents),
        '--http-port', String(c.httpPort),
        '--https-port', String(c.httpsPort),
        '--api-port', String(c.apiPort),
        '--kubeconfig', c.kubeconfig,
        '--wait-timeout', String(cfg.waitTimeoutSeconds),
      ];
      if (c.image) args.push('--image', c.image);
      if (c.subnet) args.push('--subnet', c.subnet);
      // Direct access: the API published on this address and named in its certificate.
      if (cfg.api.publicAddress) args.push('--api-address', cfg.api.publicAddress);
      return { script: s('create_env.sh'), args };
    }
    case 'delete':
      return { script: s('delete_env.sh'), args: [...base, '--kubeconfig', c.kubeconfig] };
    case 'start':
      return { script: s('cluster.sh'), args: ['start', ...base, '--kubeconfig', c.kubeconfig, '--wait-timeout', String(cfg.waitTimeoutSeconds)] };
    case 'stop':
      return { script: s('cluster.sh'), args: ['stop', ...base] };
    case 'import-image':
      return { script: s('cluster.sh'), args: ['import-image', ...base, '--image', String(params.image)] };
    case 'sync':
      // Confirms with the provider that the cluster runs; the route and branch steps follow.
      return { script: s('cluster.sh'), args: ['status', ...base] };
  }
}

/** The status probe: the single definition of what the provider has for one cluster. */
export function statusCall(cfg: Config, name: string, provider: string): ScriptCall {
  return { script: join(cfg.scriptsDir, 'cluster.sh'), args: ['status', '--name', name, '--provider', provider] };
}

/** Reads an existing cluster's published ports, node counts and image from docker, and writes its kubeconfig to `kubeconfig`. */
export function adoptCall(cfg: Config, name: string, provider: string, kubeconfig: string): ScriptCall {
  return { script: join(cfg.scriptsDir, 'cluster.sh'), args: ['adopt', '--name', name, '--provider', provider, '--kubeconfig', kubeconfig] };
}

export type ProviderState = 'running' | 'stopped' | 'degraded' | 'absent';

/** One container of a cluster as docker reports it (name, the provider's role label, docker state). */
export interface ContainerState { name: string; role: string; state: string }
export interface StatusResult { state: ProviderState; nodes: number; running: number; containers?: ContainerState[] }

export function parseStatus(v: Record<string, unknown>): StatusResult | null {
  const state = v.state;
  if (state !== 'running' && state !== 'stopped' && state !== 'degraded' && state !== 'absent') return null;
  const containers = Array.isArray(v.containers)
    ? (v.containers as unknown[])
        .filter((x): x is Record<string, unknown> => Boolean(x) && typeof x === 'object')
        .map((x) => ({ name: str(x.name), role: str(x.role), state: str(x.state) }))
        .filter((x) => x.name)
        .slice(0, 200)
    : undefined;
  return { state, nodes: Number(v.nodes ?? 0), running: Number(v.running ?? 0), ...(containers ? { containers } : {}) };
}

/** A field a script printed, as text: a string as it is, a number spelled out, anything else is no name. */
function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

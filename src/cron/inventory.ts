/**
 * The provider's view of clusters for reconcile: `cluster.sh list` run and its answer checked (a docker
 * that cannot be asked is an error, never "no clusters").
 */
import { join } from 'node:path';
import type { Config } from '../core/config.js';
import { failed } from '../core/errors.js';
import { cleanLine } from '../core/text.js';
import { PROVIDERS, type Provider } from '../core/types.js';
import { queryScript } from '../os/runner.js';
import type { ProviderState } from '../provision/scripts.js';

/** One cluster as the provider sees it (a row of `cluster.sh list`). */
export interface ProviderCluster {
  name: string;
  provider: Provider;
  state: Exclude<ProviderState, 'absent'>;
  nodes: number;
  running: number;
}

export type ProviderInventory = () => Promise<ProviderCluster[]>;

// ---- the provider view ---------------------------------------------------------------------------

const LIST_STATES = ['running', 'stopped', 'degraded'] as const;

/** Parses the `result` of `cluster.sh list`; throws on anything malformed (never guesses "empty"). */
export function parseProviderList(value: Record<string, unknown>): ProviderCluster[] {
  const rows = value.clusters;
  if (!Array.isArray(rows)) throw failed('cluster.sh list: the result has no "clusters" list');
  return rows.map((r: unknown, i) => {
    const o = (r && typeof r === 'object' ? r : {}) as Record<string, unknown>;
    const { name, provider, state } = o;
    const nodes = Number(o.nodes ?? 0);
    const running = Number(o.running ?? 0);
    if (typeof name !== 'string' || !name) throw failed(`cluster.sh list: row ${i + 1} has no name`);
    if (!PROVIDERS.includes(provider as Provider))
      throw failed(`cluster.sh list: row ${i + 1} (${cleanLine(name, 80)}) has provider ${cleanLine(String(provider), 20)}`);
    if (!LIST_STATES.includes(state as (typeof LIST_STATES)[number]))
      throw failed(`cluster.sh list: row ${i + 1} (${cleanLine(name, 80)}) has state ${cleanLine(String(state), 20)}`);
    if (!Number.isInteger(nodes) || !Number.isInteger(running)) throw failed(`cluster.sh list: row ${i + 1} (${cleanLine(name, 80)}) has bad node counts`);
    return { name, provider: provider as Provider, state: state as ProviderCluster['state'], nodes, running };
  });
}

/** Wraps an injected `cluster.sh list` call so that its answer is checked before anyone trusts it. */
export function providerInventory(run: () => Promise<ProviderCluster[]>): ProviderInventory {
  return async () => {
    const rows = await run();
    if (!Array.isArray(rows)) throw failed('provider inventory: the answer is not a list');
    return parseProviderList({ clusters: rows });
  };
}

/** Runs `cluster.sh list --provider all`; throws when docker could not be asked (it never reports "empty" then). */
export async function listProviderClusters(cfg: Config, scriptEnv?: Record<string, string>): Promise<ProviderCluster[]> {
  try {
    const result = await queryScript({
      script: join(cfg.scriptsDir, 'cluster.sh'),
      args: ['list', '--provider', 'all'],
      cwd: cfg.scriptsDir,
      ...(scriptEnv ? { env: scriptEnv } : {}),
      timeoutMs: cfg.timeouts.status * 1000,
    });
    return parseProviderList(result);
  } catch (e) {
    throw failed(`cannot list the provider's clusters: ${(e as Error).message}`);
  }
}

/**
 * How a cluster record is built: from a create request (a new cluster, or a retry of a failed or absent
 * record that reuses everything recorded), from an import-csv row, and the rules a create is held to on the
 * way (a retry's refusals and changes, the expiry, the per-user quota, subnet clashes). Pure: the caller
 * passes the records, the config it needs and the time.
 */
import { conflict } from './errors.js';
import { kubeContextFor } from './names.js';
import type { PortKind } from './ports.js';
import { flagOf, parseSubnet, subnetsOverlap, type CreateInput, type CreateRequest } from './spec.js';
import { registerOf, wantsRoute, type Cluster, type ClusterOptions, type Provider } from './types.js';

/** The request a create runs with: a setting not given is the recorded one (a retry), else the default. */
export function resolveCreateRequest(
  input: CreateInput,
  existing: Cluster | undefined,
  d: { provider: Provider; servers: number; agents: number },
): CreateRequest {
  return {
    ...input,
    provider: input.provider ?? existing?.provider ?? d.provider,
    servers: input.servers ?? existing?.servers ?? d.servers,
    agents: input.agents ?? existing?.agents ?? d.agents,
  };
}

/**
 * A create over an existing record is a retry: refused unless the record failed or is absent, and refused
 * for another provider. Returns the recorded settings the request changes (for the recreate guard).
 */
export function retryChanges(input: CreateInput, req: CreateRequest, existing: Cluster): string[] {
  if (existing.actual !== 'failed' && existing.actual !== 'absent') {
    throw conflict(`name: cluster "${req.name}" already exists (${existing.actual})`, 'name');
  }
  if (existing.provider !== req.provider) {
    throw conflict(
      `provider: cluster "${req.name}" is recorded as ${existing.provider}; a retry keeps its provider (omit --provider, or delete it first to change provider)`,
      'provider',
    );
  }
  const changes: string[] = [];
  if (input.servers !== undefined && input.servers !== existing.servers) changes.push('servers');
  if (input.agents !== undefined && input.agents !== existing.agents) changes.push('agents');
  if (req.image !== undefined && req.image !== existing.image) changes.push('image');
  for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) if (req[k] !== undefined && req[k] !== existing[k]) changes.push(flagOf(k));
  if (req.subnet !== undefined && req.subnet !== existing.subnet) changes.push('subnet');
  if (req.ttlMs !== undefined) changes.push('ttl');
  if (req.options?.route !== undefined && req.options.route !== wantsRoute(existing)) changes.push('route');
  if (req.options?.register !== undefined && req.options.register.join(',') !== registerOf(existing).join(',')) changes.push('register');
  return changes;
}

/**
 * When the cluster expires: `ttlMs` from now when given (`defaultTtlMs` for a new record given none), else a
 * retry keeps its recorded expiry, and a recorded expiry already past is refused. Undefined: never.
 */
export function createExpiry(
  req: Pick<CreateRequest, 'name' | 'ttlMs'>,
  existing: Cluster | undefined,
  defaultTtlMs: () => number | undefined,
  nowMs: number,
): string | undefined {
  let expiresAt: string | undefined;
  let ttlMs = req.ttlMs;
  if (existing) {
    if (ttlMs === undefined && existing.expiresAt) {
      if (Date.parse(existing.expiresAt) <= nowMs) {
        throw conflict(`ttl: cluster "${req.name}" expired at ${existing.expiresAt}; give --ttl to retry it with a new expiry, or delete it`, 'ttl');
      }
      expiresAt = existing.expiresAt;
    }
  } else if (ttlMs === undefined) ttlMs = defaultTtlMs();
  if (ttlMs !== undefined) expiresAt = new Date(nowMs + ttlMs).toISOString();
  return expiresAt;
}

/** Refuses a new cluster to a user who already has `max` (0: no limit); a retry is never counted. */
export function checkQuota(others: readonly Cluster[], user: string, max: number, isNew: boolean): void {
  if (max <= 0 || !isNew) return;
  const owned = others.filter((c) => c.owner === user).length;
  if (owned >= max) throw conflict(`quota: ${user} already has ${owned} cluster${owned === 1 ? '' : 's'} (limit ${max}); delete one first`);
}

/** The first other cluster whose subnet overlaps `subnet`, if any. */
export function subnetClash(subnet: string, others: readonly Cluster[]): Cluster | undefined {
  const mine = parseSubnet(subnet);
  return others.find((c) => c.subnet && subnetsOverlap(mine, parseSubnet(c.subnet)));
}

/** What a create record is built from, beyond the request. */
export interface CreateRecordFacts {
  req: CreateRequest;
  existing?: Cluster;
  ports: Record<PortKind, number>;
  expiresAt?: string;
  owner: string;
  /** The kubeconfig file kindler keeps for the cluster. */
  kubeconfig: string;
  routes: { enabled: boolean; baseDomain: string };
  at: string;
}

/**
 * The record a create writes (`creating`): the request's settings, else the recorded ones (a retry), else the
 * defaults (routed, registered nowhere); a retry keeps its owner and creation time.
 */
export function buildCreateRecord(f: CreateRecordFacts): Cluster {
  const { req, existing } = f;
  const image = req.image ?? existing?.image;
  const subnet = req.subnet ?? existing?.subnet;
  const options: ClusterOptions = {
    route: req.options?.route ?? (existing ? wantsRoute(existing) : true),
    register: req.options?.register ?? (existing ? registerOf(existing) : []),
  };
  return {
    name: req.name,
    provider: req.provider,
    servers: req.servers,
    agents: req.agents,
    ...(image ? { image } : {}),
    ...f.ports,
    ...(subnet ? { subnet } : {}),
    owner: existing?.owner ?? f.owner,
    createdAt: existing?.createdAt ?? f.at,
    desired: 'present',
    actual: 'creating',
    ...(f.expiresAt ? { expiresAt: f.expiresAt } : {}),
    kubeContext: kubeContextFor(req.provider, req.name),
    kubeconfig: f.kubeconfig,
    ...(f.routes.enabled && options.route ? { domain: `${req.name}.${f.routes.baseDomain}` } : {}),
    ...(req.ingressNodePort ? { ingressNodePort: req.ingressNodePort } : existing?.ingressNodePort ? { ingressNodePort: existing.ingressNodePort } : {}),
    options,
    updatedAt: f.at,
  };
}

/** The create task's parameters: whether the record is new, removeOnFailure, and a retry's first log line. */
export function createParams(cluster: Cluster, existing: Cluster | undefined, removeOnFailure: boolean | undefined): Record<string, string | number | boolean> {
  const params: Record<string, string | number | boolean> = { newRecord: !existing };
  if (removeOnFailure) params.removeOnFailure = true;
  if (existing) params.retry = retryLine(cluster, existing);
  return params;
}

/**
 * The line a retry starts with: every setting it runs with, and which of them were given now instead of
 * taken from the record.
 */
export function retryLine(c: Cluster, was: Cluster): string {
  const settings = [
    `provider ${c.provider}`,
    `servers ${c.servers}`,
    `agents ${c.agents}`,
    `image ${c.image ?? "(the provider's default)"}`,
    `ports http ${c.httpPort}, https ${c.httpsPort}, api ${c.apiPort}`,
    `subnet ${c.subnet ?? '(none)'}`,
    `expires ${c.expiresAt ?? 'never'}`,
    `route ${wantsRoute(c) ? 'on' : 'off (--no-route)'}`,
    `register ${registerOf(c).join(',') || 'none'}`,
  ];
  const given: string[] = [];
  if (c.servers !== was.servers) given.push('servers');
  if (c.agents !== was.agents) given.push('agents');
  if (c.image !== was.image) given.push('image');
  for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) if (c[k] !== was[k]) given.push(flagOf(k));
  if (c.subnet !== was.subnet) given.push('subnet');
  if (c.expiresAt !== was.expiresAt) given.push('ttl');
  if (wantsRoute(c) !== wantsRoute(was)) given.push('route');
  if (registerOf(c).join(',') !== registerOf(was).join(',')) given.push('register');
  return `retrying ${c.name} with its recorded settings: ${settings.join('; ')}${given.length ? ` (given now: ${given.join(', ')})` : ''}`;
}

/** The record an import-csv row becomes: `unknown` until the provider is asked, routed unless the row says not. */
export function buildImportedRecord(req: CreateRequest, ports: Record<PortKind, number>, owner: string, kubeconfig: string, at: string): Cluster {
  return {
    name: req.name,
    provider: req.provider,
    servers: 1,
    agents: 0,
    ...ports,
    ...(req.subnet ? { subnet: req.subnet } : {}),
    owner,
    createdAt: at,
    desired: 'present',
    actual: 'unknown',
    kubeContext: kubeContextFor(req.provider, req.name),
    kubeconfig,
    ...(req.ingressNodePort ? { ingressNodePort: req.ingressNodePort } : {}),
    options: { route: req.options?.route ?? true, register: req.options?.register ?? [] },
    updatedAt: at,
  };
}

/**
 * `kindler kubeconfig NAME [--mode tunnel|direct] [--local-port P] [--duration D]`: a complete
 * kubeconfig for one cluster on stdout, context `kindler-NAME`. No kubeconfig on the host is touched:
 * the credential comes from kindler's own file for the cluster (admins and the owner), or is a
 * read-only ServiceAccount token made for the caller (everyone else).
 */
import { hostname } from 'node:os';
import { authorize } from '../access/authorize.js';
import { isPublishableAddress } from '../core/config.js';
import { parseDuration, formatDuration } from '../core/duration.js';
import { conflict, failed, KindlerError, notFound, refused, usageError } from '../core/errors.js';
import { parsePort } from '../core/ports.js';
import { shown } from '../core/text.js';
import { readAdminEntry, renderKubeconfig, serverHostPort, viewerAccount, viewerToken, type KubectlEnv } from '../provision/access.js';
import type { Config } from '../core/config.js';
import type { Engine } from '../engine/engine.js';
import type { Principal } from './context.js';
import type { FlagSpec } from './parse.js';

/** The port a tunnel's destination names: `NAME:6443`, as inside the cluster. */
export const TUNNEL_PORT = 6443;
/** The name TLS verification uses through a tunnel (every k3d and kind API certificate carries it). */
export const TUNNEL_TLS_NAME = 'localhost';

export const KUBECONFIG_FLAGS: Record<string, FlagSpec> = {
  mode: { type: 'string', value: 'tunnel|direct', help: 'tunnel (default): server https://127.0.0.1:P through `ssh -L`; direct: the API on api.publicAddress' },
  'local-port': { type: 'string', value: 'P', help: "tunnel only: the local port of the tunnel (default: the cluster's API port)" },
  duration: {
    type: 'string',
    value: 'DURATION',
    help: 'read-only credentials only: token lifetime (default access.defaultTokenDuration, at most access.maxTokenDuration)',
  },
};

export interface KubeconfigResult {
  cluster: string;
  context: string;
  mode: 'tunnel' | 'direct';
  server: string;
  credential: 'admin' | 'read-only';
  /** When a read-only token stops working (admin credentials: undefined). */
  expiresAt?: string;
  kubeconfig: string;
  tunnel: { command: string; localPort: number; destination: string } | null;
  /** The command that fetches this kubeconfig into a file from another machine (over SSH). */
  save: string;
}

/** `kubeconfig`'s arguments, as given: mode tunnel (default) or direct, the tunnel's local port, a read-only token's lifetime. */
export interface KubeconfigArgs {
  name: string;
  mode?: string;
  localPort?: string;
  duration?: string;
}

/** Where clients reach the SSH service, for the tunnel command: `ssh` is the service a verb came through, when it did. */
export function sshEndpoint(cfg: Config, ssh?: { host: string; port: number }): { host: string; port: number } {
  const s = cfg.ssh;
  const listen = ssh?.host ?? s.host;
  const host = s.publicHost ?? (listen === '0.0.0.0' || listen === '::' || listen === '' ? hostname() : listen);
  return { host, port: ssh?.port ?? s.port };
}

export function tunnelCommand(name: string, localPort: number, ep: { host: string; port: number }): string {
  const host = ep.host.includes(':') ? `[${ep.host}]` : ep.host;
  return `ssh -N -L ${localPort}:${name}:${TUNNEL_PORT} kindler@${host}${ep.port === 22 ? '' : ` -p ${ep.port}`}`;
}

export function saveCommand(name: string, mode: string, ep: { host: string; port: number }): string {
  const host = ep.host.includes(':') ? `[${ep.host}]` : ep.host;
  return `ssh kindler@${host}${ep.port === 22 ? '' : ` -p ${ep.port}`} kubeconfig ${name}${mode === 'direct' ? ' --mode direct' : ''} > kindler-${name}.yaml`;
}

export async function kubeconfigFor(engine: Engine, actor: Principal, a: KubeconfigArgs, ssh?: { host: string; port: number }): Promise<KubeconfigResult> {
  const cfg = engine.cfg;
  const name = a.name;
  const rawMode = a.mode ?? 'tunnel';
  if (rawMode !== 'tunnel' && rawMode !== 'direct') throw usageError(`mode: must be tunnel or direct (got ${shown(rawMode, 20)})`, 'mode');
  const mode = rawMode;
  const rawLocal = a.localPort;
  if (rawLocal !== undefined && mode !== 'tunnel') throw usageError('local-port: only with --mode tunnel', 'local-port');
  const localPortFlag = rawLocal !== undefined ? parsePort('local-port', rawLocal, 1) : undefined;
  const rawDuration = a.duration;
  const maxMs = parseDuration('access.maxTokenDuration', cfg.access.maxTokenDuration);
  let tokenMs = Math.min(parseDuration('access.defaultTokenDuration', cfg.access.defaultTokenDuration), maxMs);
  if (rawDuration !== undefined) {
    tokenMs = parseDuration('duration', rawDuration);
    if (tokenMs > maxMs)
      throw usageError(
        `duration: at most ${cfg.access.maxTokenDuration} (access.maxTokenDuration in the kindler config; got ${shown(rawDuration, 20)})`,
        'duration',
      );
    if (tokenMs < 10 * 60_000) throw usageError('duration: at least 10m (the API server refuses shorter tokens)', 'duration');
  }
  const publicAddress = cfg.api.publicAddress;
  if (mode === 'direct' && !publicAddress) {
    throw usageError(
      'mode: --mode direct needs api.publicAddress in the kindler config (the host address clients reach cluster APIs on, e.g. "api": {"publicAddress": "192.168.1.10"}); without it use --mode tunnel',
      'mode',
    );
  }
  const c = engine.getCluster(name);
  if (!c) throw notFound(`cluster: no cluster named ${shown(name, 40)}`);
  const d = authorize(actor, 'kubeconfig', { owner: c.owner });
  if (!d.ok) throw refused(d.reason);
  const admin = authorize(actor, 'kubeconfig-admin', { owner: c.owner, cluster: c.name }).ok;
  if (admin && rawDuration !== undefined)
    throw usageError(`duration: only read-only credentials expire; you get ${c.name}'s admin credential (omit --duration)`, 'duration');
  if (c.desired === 'absent') throw conflict(`cluster: ${c.name} is being deleted`);
  // A cluster whose create has not finished (or failed) has no kubeconfig yet: say that, not kubectl's stat error.
  if (c.actual === 'creating' || c.actual === 'failed' || c.actual === 'absent') {
    throw conflict(
      `cluster: ${c.name} is ${c.actual}${c.actual === 'failed' && c.lastError ? ` (${shown(c.lastError, 120)})` : ''}; it has no kubeconfig until a create succeeds`,
    );
  }
  const k: KubectlEnv = { ...(engine.scriptEnv ? { env: engine.scriptEnv } : {}), timeoutMs: cfg.timeouts.status * 1000 };
  try {
    const entry = await readAdminEntry(k, c.kubeconfig, c.kubeContext);
    let server: string;
    let tlsServerName: string | undefined;
    let tunnel: KubeconfigResult['tunnel'] = null;
    if (mode === 'direct') {
      const at = serverHostPort(entry.server);
      if (!publicAddress || !isPublishableAddress(publicAddress) || at?.host !== publicAddress) {
        throw conflict(
          `mode: ${c.name} was created before api.publicAddress was ${publicAddress}, so its API is not published there nor in its certificate; use --mode tunnel (or re-create the cluster)`,
          'mode',
        );
      }
      server = `https://${publicAddress}:${at.port}`;
    } else {
      const lp = localPortFlag ?? c.apiPort;
      server = `https://127.0.0.1:${lp}`;
      tlsServerName = TUNNEL_TLS_NAME;
      tunnel = { command: tunnelCommand(c.name, lp, sshEndpoint(cfg, ssh)), localPort: lp, destination: `${c.name}:${TUNNEL_PORT}` };
    }
    let user: Record<string, string>;
    let expiresAt: string | undefined;
    let userName: string;
    let account: string | undefined;
    if (admin) {
      user = entry.user;
      userName = `kindler-${c.name}-admin`;
    } else {
      if (c.actual !== 'running') throw conflict(`cluster: ${c.name} is ${c.actual}; a read-only credential is made by its API server, so it must be running`);
      account = viewerAccount(actor.user);
      const t = await viewerToken(k, c.kubeconfig, c.kubeContext, account, Math.round(tokenMs / 1000));
      user = { token: t.token };
      expiresAt = t.expiresAt;
      userName = `kindler-${c.name}-${account}`;
    }
    const context = `kindler-${c.name}`;
    const save = saveCommand(c.name, mode, sshEndpoint(cfg, ssh));
    const yaml = renderKubeconfig({
      clusterName: context,
      contextName: context,
      userName,
      server,
      ...(entry.caData ? { caData: entry.caData } : {}),
      ...(tlsServerName ? { tlsServerName } : {}),
      user,
    });
    const head = [
      `# kindler kubeconfig for cluster ${c.name} (context ${context}, ${mode} mode)`,
      admin
        ? `# credential: ${c.name}'s admin credential`
        : `# credential: read-only (ServiceAccount kube-system/${account}, ClusterRole view), expires ${expiresAt} (${formatDuration(tokenMs)})`,
      ...(tunnel ? [`# open the tunnel first (leave it running): ${tunnel.command}`] : []),
      `# then: kubectl --kubeconfig kindler-${c.name}.yaml get nodes   (this file, saved e.g. with: ${save})`,
    ];
    const kubeconfig = `${head.join('\n')}\n${yaml}`;
    engine.recordAudit(actor, 'kubeconfig', c.name, 'ok', `${admin ? 'admin credential' : `read-only token for ${account} until ${expiresAt}`}, mode ${mode}`);
    return { cluster: c.name, context, mode, server, credential: admin ? 'admin' : 'read-only', ...(expiresAt ? { expiresAt } : {}), kubeconfig, tunnel, save };
  } catch (e) {
    if (e instanceof KindlerError && e.kind !== 'failed') throw e;
    const msg = e instanceof Error ? e.message : String(e);
    engine.recordAudit(actor, 'kubeconfig', c.name, 'failed', msg.slice(0, 300));
    throw e instanceof KindlerError ? e : failed(`kubeconfig: ${msg}`);
  }
}

/**
 * Cluster credentials for the kubeconfig verb. Everything goes through kubectl against kindler's own
 * kubeconfig file for the cluster (under dataDir/kubeconfig): nothing here touches any other
 * kubeconfig on the host.
 *
 * Secrets (client keys, tokens) only ever travel through kubectl's stdin/stdout and this process's
 * memory: never argv, logs, the audit log or state.
 */
import { createHash } from 'node:crypto';
import { runCaptured } from '../os/run.js';
import { failed } from '../core/errors.js';
import { sanitizeLine } from '../core/text.js';

export interface KubectlEnv {
  env?: Record<string, string>;
  timeoutMs: number;
}

/** One cluster entry, one user entry and one context, as a kubeconfig holds them. */
export interface KubeconfigParts {
  clusterName: string;
  contextName: string;
  userName: string;
  /** https://HOST:PORT */
  server: string;
  caData?: string;
  tlsServerName?: string;
  /** The user entry's fields (client-certificate-data, client-key-data, or token). */
  user: Record<string, string>;
}

/** The admin entry of kindler's own kubeconfig for one cluster. */
export interface AdminEntry {
  server: string;
  caData?: string;
  /** Only string fields of the user entry (client-certificate-data, client-key-data, token). */
  user: Record<string, string>;
}

const MAX_OUT = 1024 * 1024;

async function kubectl(k: KubectlEnv, what: string, args: string[], input?: string): Promise<string> {
  const r = await runCaptured('kubectl', args, {
    ...(k.env ? { env: k.env } : {}),
    timeoutMs: k.timeoutMs,
    maxOutput: MAX_OUT,
    ...(input !== undefined ? { input } : {}),
  });
  if (!r.ok) {
    const why = r.timedOut
      ? `timed out after ${k.timeoutMs} ms`
      : r.spawnError !== undefined
        ? r.spawnError
        : r.signal
          ? `killed by ${r.signal}`
          : `exit ${r.exitCode}`;
    // stderr only (never stdout: it may hold a credential); one sanitized line.
    const errLine =
      r.stderr
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .slice(-1)[0] ?? '';
    throw failed(`kubectl ${what} failed (${why})${errLine ? `: ${sanitizeLine(errLine).slice(0, 300)}` : ''}`);
  }
  if (r.dropped > 0) throw failed(`kubectl ${what} printed more than ${MAX_OUT} bytes`);
  return r.stdout;
}

/** Reads the cluster, user and server of `context` in kindler's file (kubectl config view --minify --raw). */
export async function readAdminEntry(k: KubectlEnv, file: string, context: string): Promise<AdminEntry> {
  const out = await kubectl(k, 'config view', ['config', 'view', '--kubeconfig', file, '--context', context, '--minify', '--raw', '-o', 'json']);
  let v: unknown;
  try {
    v = JSON.parse(out);
  } catch {
    throw failed(`kubeconfig ${file}: kubectl config view did not print JSON`);
  }
  const cfg = v as { clusters?: { cluster?: Record<string, unknown> }[]; users?: { user?: Record<string, unknown> }[] };
  const cl = cfg.clusters?.[0]?.cluster;
  const us = cfg.users?.[0]?.user;
  if (!cl || typeof cl.server !== 'string' || !us) throw failed(`kubeconfig ${file}: no cluster or user for context ${context}`);
  const user: Record<string, string> = {};
  // Only embedded credentials, and only in their plain shapes (base64 data, a token's characters).
  for (const [key, val] of Object.entries(us)) {
    if (typeof val !== 'string') continue;
    if (/^client-(certificate|key)-data$/.test(key) && /^[A-Za-z0-9+/=]{1,65536}$/.test(val)) user[key] = val;
    else if (key === 'token' && /^[A-Za-z0-9._~+/=-]{1,8192}$/.test(val)) user[key] = val;
  }
  if (!Object.keys(user).length) throw failed(`kubeconfig ${file}: the user of context ${context} has no embedded credential`);
  const ca = cl['certificate-authority-data'];
  if (ca !== undefined && (typeof ca !== 'string' || !/^[A-Za-z0-9+/=]{1,65536}$/.test(ca)))
    throw failed(`kubeconfig ${file}: the cluster's certificate-authority-data is not base64`);
  return { server: cl.server, ...(typeof ca === 'string' ? { caData: ca } : {}), user };
}

/** `kindler-view-USER`, a valid ServiceAccount name for any kindler user name (a hash keeps mapped names apart). */
export function viewerAccount(user: string): string {
  const clean = user
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/-+$/, '');
  const name = `kindler-view-${clean}`;
  if (clean === user && clean.length > 0) return name;
  return `${name}${clean ? '-' : ''}${createHash('sha256').update(user).digest('hex').slice(0, 8)}`;
}

/** The ServiceAccount and its binding to the built-in `view` ClusterRole, as one List for `apply -f -`. */
export function viewerManifest(account: string): string {
  const labels = { 'app.kubernetes.io/managed-by': 'kindler' };
  return `${JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: account, namespace: 'kube-system', labels } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: account, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: account, namespace: 'kube-system' }],
      },
    ],
  })}\n`;
}

/**
 * Makes sure the read-only account exists (idempotent apply through stdin), then asks for a token of
 * `seconds`. Returns the token (from kubectl's stdout) and its expiry (the token's own `exp` when it
 * is a JWT, else now + seconds).
 */
export async function viewerToken(
  k: KubectlEnv,
  file: string,
  context: string,
  account: string,
  seconds: number,
): Promise<{ token: string; expiresAt: string }> {
  const base = ['--kubeconfig', file, '--context', context];
  await kubectl(k, 'apply (read-only ServiceAccount and binding)', [...base, 'apply', '-f', '-'], viewerManifest(account));
  const asked = Date.now();
  const out = (await kubectl(k, 'create token', [...base, 'create', 'token', account, '-n', 'kube-system', `--duration=${seconds}s`])).trim();
  if (!/^[A-Za-z0-9._~+/=-]{16,8192}$/.test(out)) throw failed('kubectl create token did not print a token');
  return { token: out, expiresAt: jwtExpiry(out) ?? new Date(asked + seconds * 1000).toISOString() };
}

function jwtExpiry(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const p = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof p.exp === 'number' && Number.isFinite(p.exp) ? new Date(p.exp * 1000).toISOString() : undefined;
  } catch {
    return undefined;
  }
}

/** A YAML scalar that is always a plain string to a YAML parser (JSON string syntax is valid YAML). */
const q = (s: string) => JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** A complete, self-contained kubeconfig (YAML) with one cluster, user and context, current-context set. */
export function renderKubeconfig(p: KubeconfigParts): string {
  const lines = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: ' + q(p.clusterName),
    '  cluster:',
    `    server: ${q(p.server)}`,
    ...(p.caData ? [`    certificate-authority-data: ${q(p.caData)}`] : []),
    ...(p.tlsServerName ? [`    tls-server-name: ${q(p.tlsServerName)}`] : []),
    'users:',
    '- name: ' + q(p.userName),
    '  user:',
    ...Object.entries(p.user).map(([key, val]) => `    ${key}: ${q(val)}`),
    'contexts:',
    '- name: ' + q(p.contextName),
    '  context:',
    `    cluster: ${q(p.clusterName)}`,
    `    user: ${q(p.userName)}`,
    `current-context: ${q(p.contextName)}`,
    'preferences: {}',
  ];
  return `${lines.join('\n')}\n`;
}

/** The host and port of an API server URL (0.0.0.0 and :: mean the loopback address to a client on the host). */
export function serverHostPort(server: string): { host: string; port: number } | null {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    return null;
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 443);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host: host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host, port };
}

/**
 * The daemon's configuration: shape, defaults and validation (pure). Loading lives in store/config.ts.
 */
import type { PortRange } from './ports.js';
import { MIN_CLUSTER_PORT, PORT_MAX, validRange } from './ports.js';
import { LIMITS, WAIT_TIMEOUT_SECONDS, waitTimeoutOk } from './spec.js';
import { PASS_ENV_RE } from './childenv.js';
import { PROVIDERS, type Provider, type TaskKind } from './types.js';

export interface Config {
  /** Where state.json, logs/, kubeconfig/ and the control socket live. */
  dataDir: string;
  /** Where create_env.sh, delete_env.sh and cluster.sh live. */
  scriptsDir: string;
  /** How many tasks may run at once; the rest queue. */
  concurrency: number;
  /** Per task kind, in seconds, after which the task is stopped and cleaned up. */
  timeouts: Record<TaskKind | 'status', number>;
  /** Seconds between SIGTERM and SIGKILL when a task is cancelled or times out. */
  cancelGraceSeconds: number;
  /** Seconds the scripts wait for nodes to become Ready. */
  waitTimeoutSeconds: number;
  ports: { http: PortRange; https: PortRange; api: PortRange };
  /** Refuse ports something on the host already listens on. */
  checkHostPorts: boolean;
  defaults: { provider: Provider; servers: number; agents: number; ttl?: string };
  /** Log lines kept in memory per task (the full log is on disk). */
  logRingLines: number;
  /** Terminal tasks kept in memory listings per cluster page. */
  taskListLimit: number;
  ssh: SshConfig;
  /** Where post-create.d/ and post-delete.d/ hooks live. */
  hooksDir: string;
  hookTimeoutSeconds: number;
  /** Most clusters one user may own (0 = no limit). */
  maxClustersPerUser: number;
  /** node-cron expressions (UTC); a bad one stops the daemon at start. */
  schedules: { reconcile: string; ttl: string; retention: string };
  /** Finished tasks (and their logs) older than this are pruned; each cluster's latest task stays. 0 = keep all. */
  retentionDays: number;
  /** Refusals recorded in the audit log per user per minute; the rest are counted and recorded as one
   *  "N more refusals suppressed" event when the minute ends. 0 = record every refusal. */
  auditRefusalsPerMinute: number;
  /** Audit events older than this are pruned by the retention job. 0 = no age limit. */
  auditRetentionDays: number;
  /** Most audit events kept: the oldest beyond it are dropped as new ones come (and by the retention job). 0 = no limit. */
  auditMaxEvents: number;
  /** Most data rows one import-csv takes; a bigger file is refused whole, changing nothing. */
  importCsvMaxRows: number;
  /** What a reconcile pass heals by itself; the rest it only reports. */
  reconcile: { heal: { missing: boolean; stopped: boolean; running: boolean; route: boolean; branch: boolean } };
  routes: RoutesSettings;
  gitops: GitopsSettings;
  /**
   * More of the daemon's environment for the processes it starts (scripts, hooks, git, probes), on top
   * of the built-in allow-list (core/childenv.ts): exact names, or prefixes ending in `*`
   * (e.g. `PORTAINER_*`). Nothing else of the daemon's environment reaches a child.
   */
  passEnv: string[];
  /** How clients reach a cluster's API server (see the kubeconfig verb). */
  api: ApiSettings;
  /** Credentials handed out by the kubeconfig verb. */
  access: AccessSettings;
}

export interface ApiSettings {
  /** When set, new clusters publish their API on this address (and carry it in the API certificate), and
   *  `kubeconfig --mode direct` names it. Unset: only tunnels (`ssh -L`) reach a cluster from elsewhere. */
  publicAddress?: string;
}

export interface AccessSettings {
  /** Lifetime of a read-only token when --duration is not given (a duration like 8h). */
  defaultTokenDuration: string;
  /** The longest --duration a read-only token may be given. */
  maxTokenDuration: string;
}

export interface RoutesSettings {
  /** Whether kindler manages routes at all. When false, `applyRoutes` touches nothing. */
  enabled: boolean;
  /** Clusters are reached as `NAME.<baseDomain>` and `*.NAME.<baseDomain>`, e.g. `dev.example.test`. */
  baseDomain: string;
  /** Where HAProxy listens. `http` is always rendered (HTTP mode, Host-header routing); `https`, when given,
   *  is a TCP-mode frontend that routes on TLS SNI and passes the TLS stream through untouched. An empty
   *  address means all interfaces. */
  listen: { http: { address: string; port: number }; https?: { address: string; port: number } };
  /** The live HAProxy config file kindler owns entirely (rewritten whole on every change). */
  configFile: string;
  /** Validates a candidate file; argv without a shell, `{file}` is replaced by the candidate's path and must
   *  appear. Default `['haproxy', '-c', '-f', '{file}']`. */
  validateCommand: string[];
  /** Makes HAProxy load the live file; argv without a shell, `{file}` (optional) becomes `configFile`.
   *  Default `['systemctl', 'reload', 'haproxy']`. */
  reloadCommand: string[];
  /** Where a route forwards to.
   *  - `host-port`: `127.0.0.1:<cluster.httpPort>` (and `:<httpsPort>` for TLS): the cluster's published
   *    ingress ports; works on the host without access to docker networks.
   *  - `node-address`: `<cluster.nodeAddress>:<ingressNodePort ?? 80>` (and `:443` for TLS): straight to the
   *    node container; needs a routable node address. */
  backend: 'host-port' | 'node-address';
}

export interface GitopsSettings {
  enabled: boolean;
  /** A local path or a remote URL (credentials come from git itself, never from here). */
  repository: string;
  baseBranch: string;
  templateDir?: string;
  author: { name: string; email: string };
}

export interface SshConfig {
  enabled: boolean;
  host: string;
  port: number;
  /** ed25519 host key; created (mode 0600) on first start when missing, never replaced. */
  hostKeyFile: string;
  /** Users, roles and public keys (see README, Users). */
  usersFile: string;
  /** Connections not logged in yet, all sources together; when full, a pending one makes room for a newcomer. */
  maxUnauthenticated: number;
  /** All SSH connections, logged in or not. Keep it well below the daemon's fd limit (ulimit -n / LimitNOFILE). */
  maxConnections: number;
  /** Logged-in connections per user; a login over it is refused and logged (not counted as a failure). */
  maxConnectionsPerUser: number;
  /** A logged-in connection with no session channel open for this long is closed. */
  noChannelTimeoutSeconds: number;
  loginGraceSeconds: number;
  maxAuthTries: number;
  /** `failures` within `windowSeconds` mark an address for `blockSeconds`: never a lockout (a listed key
   *  still logs in from it); its pending connections go first when the table is full, and each failed
   *  attempt from it is answered after `delaySeconds` (0: no delay). */
  rateLimit: { failures: number; windowSeconds: number; blockSeconds: number; delaySeconds: number };
  maxSessionsPerUser: number;
  maxChannelsPerConnection: number;
  /** No keyboard input for this long warns the session; idleCloseSeconds closes it. */
  idleWarnSeconds: number;
  idleCloseSeconds: number;
  /** The host name clients use to reach this SSH service, shown in tunnel commands (default: `host`). */
  publicHost?: string;
  /** Tunnels (`ssh -L P:NAME:6443`) open at once per user, all connections together. */
  maxTunnelsPerUser: number;
  /**
   * A connection that sent nothing for this long is probed; after keepaliveCountMax unanswered probes
   * it is closed (a vanished client frees its sessions within (countMax + 1) x this). Each probe is a
   * packet each way per idle connection: at 15 s they were half the idle CPU of 100 open TUI sessions.
   */
  keepaliveSeconds: number;
  keepaliveCountMax: number;
}

export const DEFAULT_CONFIG: Omit<Config, 'dataDir' | 'scriptsDir' | 'hooksDir'> = {
  concurrency: 2,
  timeouts: { create: 900, delete: 300, start: 300, stop: 300, 'import-image': 600, sync: 300, status: 60 },
  cancelGraceSeconds: 10,
  waitTimeoutSeconds: 180,
  ports: { http: { from: 18080, to: 18279 }, https: { from: 18443, to: 18642 }, api: { from: 16443, to: 16642 } },
  checkHostPorts: true,
  defaults: { provider: 'k3d', servers: 1, agents: 0 },
  logRingLines: 2000,
  taskListLimit: 50,
  ssh: {
    enabled: true,
    host: '127.0.0.1',
    port: 2222,
    hostKeyFile: 'keys/ssh_host_ed25519_key',
    usersFile: 'config/users.conf',
    maxUnauthenticated: 32,
    maxConnections: 256,
    maxConnectionsPerUser: 10,
    noChannelTimeoutSeconds: 60,
    loginGraceSeconds: 20,
    maxAuthTries: 6,
    rateLimit: { failures: 10, windowSeconds: 60, blockSeconds: 300, delaySeconds: 1 },
    maxSessionsPerUser: 8,
    maxChannelsPerConnection: 4,
    idleWarnSeconds: 1740,
    idleCloseSeconds: 1800,
    maxTunnelsPerUser: 16,
    keepaliveSeconds: 60,
    keepaliveCountMax: 3,
  },
  hookTimeoutSeconds: 120,
  maxClustersPerUser: 0,
  schedules: { reconcile: '*/5 * * * *', ttl: '* * * * *', retention: '17 * * * *' },
  retentionDays: 30,
  auditRefusalsPerMinute: 20,
  auditRetentionDays: 90,
  auditMaxEvents: 5000,
  importCsvMaxRows: 1000,
  reconcile: { heal: { missing: false, stopped: true, running: true, route: true, branch: true } },
  routes: {
    enabled: false,
    baseDomain: '127.0.0.1.sslip.io',
    listen: { http: { address: '0.0.0.0', port: 80 } },
    configFile: '/etc/haproxy/kindler.cfg',
    validateCommand: ['haproxy', '-c', '-f', '{file}'],
    reloadCommand: ['systemctl', 'reload', 'haproxy'],
    backend: 'host-port',
  },
  gitops: {
    enabled: false,
    repository: '',
    baseBranch: 'main',
    author: { name: 'kindler', email: 'kindler@localhost' },
  },
  passEnv: [],
  api: {},
  access: { defaultTokenDuration: '8h', maxTokenDuration: '24h' },
};

/** Returns a list of problems, each naming the key and the rule. Empty when valid. */
export function configProblems(c: Config): string[] {
  const out: string[] = [];
  const posInt = (k: string, v: unknown, min = 1) => {
    if (!Number.isInteger(v) || (v as number) < min) out.push(`${k}: must be a whole number >= ${min}`);
  };
  if (typeof c.dataDir !== 'string' || !c.dataDir) out.push('dataDir: must be a non-empty path');
  if (typeof c.scriptsDir !== 'string' || !c.scriptsDir) out.push('scriptsDir: must be a non-empty path');
  if (typeof c.hooksDir !== 'string' || !c.hooksDir) out.push('hooksDir: must be a non-empty path');
  posInt('hookTimeoutSeconds', c.hookTimeoutSeconds);
  posInt('maxClustersPerUser', c.maxClustersPerUser, 0);
  posInt('retentionDays', c.retentionDays, 0);
  posInt('auditRefusalsPerMinute', c.auditRefusalsPerMinute, 0);
  posInt('auditRetentionDays', c.auditRetentionDays, 0);
  posInt('auditMaxEvents', c.auditMaxEvents, 0);
  if (c.auditMaxEvents > 0 && c.auditMaxEvents < 100) out.push('auditMaxEvents: must be 0 (no limit) or at least 100');
  posInt('importCsvMaxRows', c.importCsvMaxRows);
  for (const k of ['reconcile', 'ttl', 'retention'] as const) if (typeof c.schedules?.[k] !== 'string') out.push(`schedules.${k}: must be a cron expression`);
  for (const k of ['missing', 'stopped', 'running', 'route', 'branch'] as const)
    if (typeof c.reconcile?.heal?.[k] !== 'boolean') out.push(`reconcile.heal.${k}: must be true or false`);
  const r = c.routes;
  if (typeof r?.enabled !== 'boolean') out.push('routes.enabled: must be true or false');
  else if (r.enabled) {
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(r.baseDomain ?? '')) out.push('routes.baseDomain: must be a DNS name like 192.168.1.10.sslip.io');
    if (!r.listen?.http || !Number.isInteger(r.listen.http.port)) out.push('routes.listen.http: must be {"address": A, "port": P}');
    if (typeof r.configFile !== 'string' || !r.configFile) out.push('routes.configFile: must be a path');
    for (const k of ['validateCommand', 'reloadCommand'] as const)
      if (!Array.isArray(r[k]) || !r[k].length || !r[k].every((x) => typeof x === 'string'))
        out.push(`routes.${k}: must be a non-empty list of strings (argv)`);
    if (r.backend !== 'host-port' && r.backend !== 'node-address') out.push('routes.backend: must be host-port or node-address');
  }
  const g = c.gitops;
  if (typeof g?.enabled !== 'boolean') out.push('gitops.enabled: must be true or false');
  else if (g.enabled) {
    if (typeof g.repository !== 'string' || !g.repository) out.push('gitops.repository: must be a path or URL');
    if (!/^[A-Za-z0-9._/-]+$/.test(g.baseBranch ?? '')) out.push('gitops.baseBranch: must be a branch name');
    if (!g.author?.name || !g.author?.email) out.push('gitops.author: must have name and email');
  }
  if (!Array.isArray(c.passEnv)) out.push('passEnv: must be a list of variable names (a trailing * makes a prefix, e.g. "PORTAINER_*")');
  else {
    const bad = c.passEnv.find((n) => typeof n !== 'string' || !PASS_ENV_RE.test(n));
    if (bad !== undefined) out.push(`passEnv: ${JSON.stringify(bad)} is not a variable name or a prefix ending in * (e.g. "PORTAINER_*")`);
  }
  posInt('concurrency', c.concurrency);
  for (const [k, v] of Object.entries(c.timeouts ?? {})) posInt(`timeouts.${k}`, v);
  posInt('cancelGraceSeconds', c.cancelGraceSeconds, 0);
  // The scripts refuse a --wait-timeout outside this range (every create would fail): refuse it here, at start.
  if (!waitTimeoutOk(c.waitTimeoutSeconds)) out.push(`waitTimeoutSeconds: must be a whole number ${WAIT_TIMEOUT_SECONDS.min}-${WAIT_TIMEOUT_SECONDS.max}`);
  posInt('logRingLines', c.logRingLines, 10);
  posInt('taskListLimit', c.taskListLimit);
  for (const k of ['http', 'https', 'api'] as const) {
    const r = c.ports?.[k];
    if (!r || !validRange(r) || r.from < MIN_CLUSTER_PORT)
      out.push(`ports.${k}: must be {"from": P, "to": Q} with ${MIN_CLUSTER_PORT} <= P <= Q <= ${PORT_MAX} (ports below ${MIN_CLUSTER_PORT} are privileged)`);
  }
  if (!(PROVIDERS as readonly string[]).includes(c.defaults?.provider)) out.push(`defaults.provider: must be ${PROVIDERS.join(' or ')}`);
  for (const k of ['servers', 'agents'] as const) {
    const v = c.defaults?.[k];
    if (!Number.isInteger(v) || v < LIMITS[k].min || v > LIMITS[k].max) out.push(`defaults.${k}: must be a whole number ${LIMITS[k].min}-${LIMITS[k].max}`);
  }
  if (typeof c.checkHostPorts !== 'boolean') out.push('checkHostPorts: must be true or false');
  const ssh = c.ssh;
  if (typeof ssh?.enabled !== 'boolean') out.push('ssh.enabled: must be true or false');
  if (typeof ssh?.host !== 'string' || !ssh.host) out.push('ssh.host: must be an address to listen on');
  posInt('ssh.port', ssh?.port, 0);
  if (ssh?.port > 65535) out.push('ssh.port: must be 0-65535');
  for (const k of [
    'maxUnauthenticated',
    'maxConnections',
    'maxConnectionsPerUser',
    'noChannelTimeoutSeconds',
    'loginGraceSeconds',
    'maxAuthTries',
    'maxSessionsPerUser',
    'maxChannelsPerConnection',
    'idleWarnSeconds',
    'idleCloseSeconds',
    'keepaliveSeconds',
    'keepaliveCountMax',
  ] as const)
    posInt(`ssh.${k}`, ssh?.[k]);
  if (ssh && Number.isInteger(ssh.maxConnections) && Number.isInteger(ssh.maxUnauthenticated) && ssh.maxUnauthenticated > ssh.maxConnections)
    out.push('ssh.maxUnauthenticated: must not be more than ssh.maxConnections');
  if (ssh && Number.isInteger(ssh.maxConnections) && ssh.maxConnections > 100_000)
    out.push('ssh.maxConnections: must be at most 100000 (and below the fd limit)');
  for (const k of ['failures', 'windowSeconds', 'blockSeconds'] as const) posInt(`ssh.rateLimit.${k}`, ssh?.rateLimit?.[k]);
  posInt('ssh.rateLimit.delaySeconds', ssh?.rateLimit?.delaySeconds, 0);
  if (
    ssh?.rateLimit &&
    Number.isInteger(ssh.rateLimit.delaySeconds) &&
    Number.isInteger(ssh.loginGraceSeconds) &&
    ssh.rateLimit.delaySeconds >= ssh.loginGraceSeconds
  )
    out.push('ssh.rateLimit.delaySeconds: must be less than ssh.loginGraceSeconds');
  posInt('ssh.maxTunnelsPerUser', ssh?.maxTunnelsPerUser);
  if (ssh?.publicHost !== undefined && (typeof ssh.publicHost !== 'string' || !/^[A-Za-z0-9.:_-]{1,253}$/.test(ssh.publicHost)))
    out.push('ssh.publicHost: must be a host name or address');
  const api = c.api;
  if (!api || typeof api !== 'object') out.push('api: must be an object');
  else if (api.publicAddress !== undefined && (typeof api.publicAddress !== 'string' || !isPublishableAddress(api.publicAddress)))
    out.push(`api.publicAddress: ${API_ADDRESS_RULE}`);
  const acc = c.access;
  for (const k of ['defaultTokenDuration', 'maxTokenDuration'] as const)
    if (typeof acc?.[k] !== 'string' || !/^(?:[0-9]{1,6}[smhd])+$/.test(acc[k])) out.push(`access.${k}: must be a duration like 8h or 1d`);
  if (ssh && ssh.idleWarnSeconds >= ssh.idleCloseSeconds) out.push('ssh.idleWarnSeconds: must be less than ssh.idleCloseSeconds');
  return out;
}

/**
 * A dotted-quad IPv4 address, each octet 0-255 without leading zeros, as a regular expression that means the same
 * in JavaScript and bash's [[ =~ ]] (create_env.sh checks --api-address with it, from scripts/lib/rules.sh).
 */
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
export const IPV4_PATTERN = `^${OCTET}(\\.${OCTET}){3}$`;
const IPV4_RE = new RegExp(IPV4_PATTERN);

/** Addresses that are IPv4 but can never be a host's own address to publish on. */
export const API_ADDRESS_REFUSED: readonly string[] = ['0.0.0.0', '255.255.255.255'];

/** The rule api.publicAddress (the scripts' --api-address) breaks, for the error line. */
export const API_ADDRESS_RULE = `must be an IPv4 address of this host, e.g. 192.168.1.10 (not ${API_ADDRESS_REFUSED.join(' or ')})`;

/** An IPv4 address a cluster's API can be published on and named in its certificate. */
export function isPublishableAddress(a: string): boolean {
  return IPV4_RE.test(a) && !API_ADDRESS_REFUSED.includes(a);
}

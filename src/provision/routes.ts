/**
 * Host routes: every routable cluster gets `NAME.BASE_DOMAIN` and `*.NAME.BASE_DOMAIN` on the host's single
 * HAProxy entry point.
 *
 * The whole HAProxy config is rendered from state (pure, deterministic), written to a temp file next to the
 * live one, validated with `haproxy -c`, and only then renamed over the live file and reloaded. Nothing is
 * patched in place, an invalid file never replaces a working one, a cluster without an address gets no route
 * (never a dead 127.0.0.1 fallback), and cluster identifiers live in their own namespace so no cluster name can
 * merge into a static section.
 */
import { KeyedSerial } from '../core/serial.js';
import { isIP } from 'node:net';
import { copyFile, link, readFile, rename, stat, unlink } from 'node:fs/promises';
import { stageFile, syncDir } from '../os/atomic.js';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { runCaptured } from '../os/run.js';
import { wantsRoute, type Cluster } from '../core/types.js';
import { failed, usageError } from '../core/errors.js';
import { cleanLine, shown } from '../core/text.js';
import type { RoutesSettings } from '../core/config.js';

/** How kindler renders and activates host routes (the `routes` section of the config). */
export type RoutesConfig = RoutesSettings;

export const DEFAULT_VALIDATE_COMMAND: readonly string[] = ['haproxy', '-c', '-f', '{file}'];
export const DEFAULT_RELOAD_COMMAND: readonly string[] = ['systemctl', 'reload', 'haproxy'];

/** One cluster's route. */
export interface Route {
  /** `NAME.BASE`. */
  host: string;
  /** `*.NAME.BASE`. */
  wildcard: string;
  /** `address:port` the HTTP route forwards to. */
  backend: string;
  /** The cluster's name. */
  cluster: string;
  /** `address:port` the TLS (SNI) route forwards to, when an https listener is configured. */
  tlsBackend?: string;
}

export interface Skipped {
  name: string;
  reason: string;
}

export interface RenderedRoutes {
  text: string;
  routes: Route[];
  skipped: Skipped[];
}

/** Options for selecting clusters. */
export interface RouteSelection {
  /** Clusters whose actual state is `creating` that the caller vouches for (e.g. the create task reaching its
   *  route step). Any other `creating` cluster gets no route. */
  creating?: Iterable<string>;
}

// Static section names all start with `fe_kindler_` / `be_kindler_`; every cluster-derived identifier starts
// with `be_cluster_` / `acl_cluster_` and may only add `[a-z0-9-]` plus fixed `_suffix`es. The prefixes are
// disjoint and names carry no `_`, so no cluster can ever collide with a static section or another cluster.
const FE_HTTP = 'fe_kindler_http';
const FE_HTTPS = 'fe_kindler_https';
const BE_404 = 'be_kindler_default_404';
const BE_TLS_REJECT = 'be_kindler_tls_reject';
const beHttp = (name: string) => `be_cluster_${name}`;
const beTls = (name: string) => `be_cluster_${name}_tls`;
const aclHost = (name: string) => `acl_cluster_${name}`;
const aclSni = (name: string) => `acl_cluster_${name}_sni`;

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why a cluster gets no route, or null when it is routable. The single selection rule: desired `present`,
 * actual `running` (or `creating` when the caller names it), and routing not switched off.
 */
export function notRoutableReason(c: Cluster, sel: RouteSelection = {}): string | null {
  if (!wantsRoute(c)) return 'routing is switched off for this cluster (created with --no-route, or imported with haproxy_route=false)';
  if (c.desired !== 'present') return `desired state is ${c.desired}, not present`;
  if (c.actual === 'running') return null;
  if (c.actual === 'creating' && sel.creating && [...sel.creating].includes(c.name)) return null;
  return `actual state is ${c.actual}, not running`;
}

/** Does this cluster get a route? See `notRoutableReason`. */
export function routable(c: Cluster, sel: RouteSelection = {}): boolean {
  return notRoutableReason(c, sel) === null;
}

function validPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** `addr:port` in HAProxy syntax (IPv6 in brackets). */
function hostPort(addr: string, port: number): string {
  return isIP(addr) === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function checkedBaseDomain(raw: string): string {
  const d = typeof raw === 'string' ? raw.toLowerCase() : '';
  const labels = d.split('.');
  if (d.length === 0 || d.length > 200 || !labels.every((l) => LABEL.test(l))) {
    throw usageError(`routes.baseDomain: ${shown(String(raw))} is not a DNS domain (lowercase labels of a-z, 0-9 and "-", dot-separated)`, 'routes.baseDomain');
  }
  return d;
}

function checkedListen(l: { address: string; port: number } | undefined, field: string): string {
  if (!l || typeof l !== 'object') throw usageError(`${field}: missing`, field);
  if (!validPort(l.port)) throw usageError(`${field}.port: ${shown(String(l.port))} is not a port (1-65535)`, `${field}.port`);
  const a = l.address ?? '';
  if (a === '' || a === '*') return `:${l.port}`;
  if (isIP(a) === 0) throw usageError(`${field}.address: ${shown(a)} is not an IP address (use "" for all interfaces)`, `${field}.address`);
  return hostPort(a, l.port);
}

interface Target {
  name: string;
  http: string;
  tls?: string;
}

/** Where one cluster's routes point, or the reason it cannot have any. */
function targetFor(c: Cluster, cfg: RoutesConfig, tls: boolean): Target | string {
  if (cfg.backend === 'host-port') {
    if (!validPort(c.httpPort)) return `no published HTTP port (httpPort=${shown(String(c.httpPort))})`;
    if (tls && !validPort(c.httpsPort)) return `no published HTTPS port (httpsPort=${shown(String(c.httpsPort))})`;
    return { name: c.name, http: hostPort('127.0.0.1', c.httpPort), tls: tls ? hostPort('127.0.0.1', c.httpsPort) : undefined };
  }
  if (cfg.backend === 'node-address') {
    const a = c.nodeAddress ?? '';
    if (a === '') return 'no node address known yet';
    if (isIP(a) === 0) return `node address ${shown(a)} is not an IP address`;
    if (/^(?:127\.|0\.0\.0\.0$)/.test(a) || a === '::1' || a === '::') return `node address ${a} is a loopback/unspecified address, never a node`;
    const port = c.ingressNodePort ?? 80;
    if (!validPort(port)) return `ingress NodePort ${shown(String(port))} is not a port`;
    return { name: c.name, http: hostPort(a, port), tls: tls ? hostPort(a, 443) : undefined };
  }
  throw usageError(`routes.backend: ${shown(String(cfg.backend))} must be "host-port" or "node-address"`, 'routes.backend');
}

/**
 * Renders the complete HAProxy config for these clusters. Pure and deterministic: the same clusters and
 * config give a byte-identical text (sorted by name, no timestamps). Throws a usage error for a bad config.
 */
export function renderRoutes(clusters: readonly Cluster[], cfg: RoutesConfig, sel: RouteSelection = {}): RenderedRoutes {
  const base = checkedBaseDomain(cfg.baseDomain);
  const httpBind = checkedListen(cfg.listen?.http, 'routes.listen.http');
  const httpsBind = cfg.listen?.https ? checkedListen(cfg.listen.https, 'routes.listen.https') : undefined;
  if (cfg.backend !== 'host-port' && cfg.backend !== 'node-address') {
    throw usageError(`routes.backend: ${shown(String(cfg.backend))} must be "host-port" or "node-address"`, 'routes.backend');
  }

  const sorted = [...clusters].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const targets: Target[] = [];
  const routes: Route[] = [];
  const skipped: Skipped[] = [];
  const seen = new Set<string>();
  for (const c of sorted) {
    const name = typeof c.name === 'string' ? c.name : '';
    if (!LABEL.test(name)) {
      skipped.push({ name: cleanLine(name, 80), reason: 'name is not a DNS label of a-z, 0-9 and "-"; refused' });
      continue;
    }
    if (seen.has(name)) {
      skipped.push({ name, reason: 'duplicate cluster name; only the first record is routed' });
      continue;
    }
    seen.add(name);
    const why = notRoutableReason(c, sel);
    if (why) {
      skipped.push({ name, reason: why });
      continue;
    }
    const host = `${name}.${base}`;
    if (host.length > 253) {
      skipped.push({ name, reason: `host name ${host.length} characters long exceeds 253` });
      continue;
    }
    const t = targetFor(c, cfg, httpsBind !== undefined);
    if (typeof t === 'string') {
      skipped.push({ name, reason: t });
      continue;
    }
    targets.push(t);
    const r: Route = { host, wildcard: `*.${host}`, backend: t.http, cluster: name };
    if (t.tls) r.tlsBackend = t.tls;
    routes.push(r);
  }

  const L: string[] = [];
  L.push(
    '# Generated by kindler from its cluster state. Do not edit: the whole file is rewritten on every change.',
    `# Base domain: ${base}; backend mode: ${cfg.backend}; routes: ${routes.length}.`,
    '',
    'global',
    '    maxconn 4096',
    '',
    'defaults',
    '    mode http',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    '    timeout http-request 10s',
    '    timeout http-keep-alive 10s',
    '    timeout tunnel 1h',
    '',
    `frontend ${FE_HTTP}`,
    '    mode http',
    `    bind ${httpBind}`,
    '    option forwardfor',
  );
  for (const t of targets) {
    const host = `${t.name}.${base}`;
    L.push(
      `    acl ${aclHost(t.name)} hdr(host),field(1,:),lower -m str ${host}`,
      `    acl ${aclHost(t.name)} hdr(host),field(1,:),lower -m end .${host}`,
    );
  }
  for (const t of targets) L.push(`    use_backend ${beHttp(t.name)} if ${aclHost(t.name)}`);
  L.push(`    default_backend ${BE_404}`, '');

  if (httpsBind) {
    L.push(
      `frontend ${FE_HTTPS}`,
      '    mode tcp',
      `    bind ${httpsBind}`,
      '    tcp-request inspect-delay 5s',
      '    tcp-request content accept if { req.ssl_hello_type 1 }',
    );
    for (const t of targets) {
      const host = `${t.name}.${base}`;
      L.push(
        `    acl ${aclSni(t.name)} req.ssl_sni,lower -m str ${host}`,
        `    acl ${aclSni(t.name)} req.ssl_sni,lower -m end .${host}`,
      );
    }
    for (const t of targets) L.push(`    use_backend ${beTls(t.name)} if ${aclSni(t.name)}`);
    L.push(`    default_backend ${BE_TLS_REJECT}`, '');
  }

  L.push(
    `backend ${BE_404}`,
    '    mode http',
    '    http-request return status 404 content-type text/plain string "kindler: no cluster is routed at this host"',
    '',
  );
  if (httpsBind) L.push(`backend ${BE_TLS_REJECT}`, '    mode tcp', '    tcp-request content reject', '');
  for (const t of targets) {
    L.push(`backend ${beHttp(t.name)}`, '    mode http', `    server ingress ${t.http}`, '');
    if (t.tls) L.push(`backend ${beTls(t.name)}`, '    mode tcp', `    server ingress ${t.tls}`, '');
  }
  return { text: L.join('\n'), routes, skipped };
}

// ---------------------------------------------------------------------------------------------
// Activation

interface CmdOutcome {
  ok: boolean;
  /** `exited 1`, `killed by SIGTERM`, `timed out`, `could not start: …`. */
  how: string;
  lines: string[];
}

async function runCommand(argv: readonly string[], timeoutMs: number): Promise<CmdOutcome> {
  const [cmd, ...args] = argv;
  const r = await runCaptured(cmd!, args, { timeoutMs });
  const lines = r.all.split('\n').map((l) => cleanLine(l, 2000)).filter((l) => l.trim() !== '');
  return { ok: r.ok, how: r.how, lines };
}

function checkedArgv(argv: unknown, field: string, needsFile: boolean): string[] {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string') || argv[0] === '') {
    throw usageError(`${field}: must be a non-empty list of strings (argv, no shell)`, field);
  }
  if (needsFile && !argv.some((a: string) => a.includes('{file}'))) {
    throw usageError(`${field}: must contain "{file}" (where the candidate config's path goes)`, field);
  }
  return argv;
}

const subst = (argv: readonly string[], file: string) => argv.map((a) => a.split('{file}').join(file));

/** The most telling lines of a command's output for an error message. */
function gist(lines: string[]): string[] {
  const important = lines.filter((l) => /\b(ALERT|WARNING|ERROR|error|fatal)\b/i.test(l));
  const pick = important.length > 0 ? important : lines;
  return pick.length > 30 ? [...pick.slice(0, 30), `… ${pick.length - 30} more lines`] : pick;
}

async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function removeQuietly(file: string): Promise<void> {
  await unlink(file).catch(() => undefined);
}


/** Applies to the same file run one after another (within this process). */
const applies = new KeyedSerial();

const VALIDATE_TIMEOUT_MS = 60_000;
const RELOAD_TIMEOUT_MS = 120_000;

/**
 * Activates a rendered config: writes it to a temp file beside `configFile`, validates it, and (when it differs
 * from the live file) renames it over `configFile` and reloads. An invalid candidate is deleted and the live
 * file stays untouched; the thrown error carries the validator's lines (also sent to `log`). When the reload
 * fails, the previous live file is put back (so the next apply retries) and the error carries its output.
 */
export function applyRoutes(text: string, cfg: RoutesConfig, log: (line: string) => void): Promise<{ changed: boolean }> {
  const live = resolve(cfg.configFile);
  return applies.run(live, () => applyNow(text, cfg, live, log));
}

async function applyNow(text: string, cfg: RoutesConfig, live: string, log: (line: string) => void): Promise<{ changed: boolean }> {
  if (!cfg.enabled) {
    log('routes: disabled in config; HAProxy config left untouched');
    return { changed: false };
  }
  const validate = checkedArgv(cfg.validateCommand ?? DEFAULT_VALIDATE_COMMAND, 'routes.validateCommand', true);
  const reload = checkedArgv(cfg.reloadCommand ?? DEFAULT_RELOAD_COMMAND, 'routes.reloadCommand', false);
  const dir = dirname(live);
  const backup = join(dir, `.${basename(live)}.kindler-${process.pid}-${randomBytes(4).toString('hex')}.prev`);

  let mode = 0o644;
  try {
    mode = (await stat(live)).mode & 0o777;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }

  const staged = await stageFile(live, text, mode);
  try {
    const v = await runCommand(subst(validate, staged.path), VALIDATE_TIMEOUT_MS);
    for (const l of v.lines) log(`validate: ${l}`);
    if (!v.ok) {
      const detail = gist(v.lines);
      throw failed(
        `routes: the new HAProxy config was rejected (${validate[0]} ${v.how}); ${live} was left unchanged` +
          (detail.length > 0 ? `:\n${detail.join('\n')}` : ' (no output)'),
      );
    }
    const current = await readIfExists(live);
    if (current !== null && current.equals(Buffer.from(text))) {
      log(`routes: ${live} is already up to date; no reload`);
      return { changed: false };
    }
    let hasBackup = false;
    if (current !== null) {
      await link(live, backup).catch(() => copyFile(live, backup));
      hasBackup = true;
    }
    await staged.commit({ durable: true });
    log(`routes: wrote ${live}; reloading`);

    const r = await runCommand(subst(reload, live), RELOAD_TIMEOUT_MS);
    for (const l of r.lines) log(`reload: ${l}`);
    if (!r.ok) {
      // Put the previous file back so that live file and running HAProxy do not silently disagree and the
      // next apply sees a difference and reloads again.
      if (hasBackup) await rename(backup, live);
      else await removeQuietly(live);
      await syncDir(dir);
      const detail = gist(r.lines);
      throw failed(
        `routes: reloading HAProxy failed (${reload[0]} ${r.how}); the previous ${live} was restored` +
          (detail.length > 0 ? `:\n${detail.join('\n')}` : ' (no output)'),
      );
    }
    if (hasBackup) await removeQuietly(backup);
    log('routes: HAProxy reloaded');
    return { changed: true };
  } finally {
    await staged.discard();
    await removeQuietly(backup);
  }
}

/** What state renders versus what is live (for `kindler routes --json`). */
export async function routesStatus(
  clusters: readonly Cluster[],
  cfg: RoutesConfig,
  sel: RouteSelection = {},
): Promise<{ routes: Route[]; skipped: Skipped[]; liveMatches: boolean; liveFile: string }> {
  const r = renderRoutes(clusters, cfg, sel);
  const liveFile = resolve(cfg.configFile);
  const current = await readIfExists(liveFile);
  return { routes: r.routes, skipped: r.skipped, liveMatches: current !== null && current.equals(Buffer.from(r.text)), liveFile };
}

/**
 * The environment of every process kindler starts (scripts, hooks, status checks, doctor probes,
 * the HAProxy validate/reload commands, git, getent): an explicit allow-list taken from the
 * daemon's own environment, plus what kindler sets for the child. Nothing else is inherited, so a
 * secret set for the service (KINDLER_INITIAL_ADMIN_KEYS, a token in a drop-in, KINDLER_CONFIG) never
 * reaches a script or a hook. More names are passed only when the config lists them (`passEnv`).
 */

/** Names passed through as they are, when the daemon has them. */
export const PASSED_ENV: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  // docker, k3d and kind: where the docker daemon is and how to reach it (no credentials: those are
  // in $DOCKER_CONFIG/config.json, read by docker itself).
  'DOCKER_HOST',
  'DOCKER_CONTEXT',
  'DOCKER_CONFIG',
  'DOCKER_CERT_PATH',
  'DOCKER_TLS_VERIFY',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'XDG_DATA_HOME',
  'XDG_RUNTIME_DIR',
  // git over ssh uses the agent when there is one.
  'SSH_AUTH_SOCK',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'ALL_PROXY',
  'all_proxy',
];

/** Prefixes passed through: the locale's categories. */
export const PASSED_PREFIXES: readonly string[] = ['LC_'];

/** A `passEnv` entry: a variable name, or a prefix ending in `*` (at least one character before it). */
export const PASS_ENV_RE = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

let configured: readonly string[] = [];

/**
 * The variable that marks every process kindler starts with the data directory it works for, so a
 * restarted daemon can find what a crashed one left running (src/os/process.ts processesWithEnv).
 */
export const OWNER_ENV = 'KINDLER_OWNER';
let owner: string | undefined;

/** Marks every child started after this with OWNER_ENV=`value` (the daemon's resolved data directory). */
export function setChildOwner(value: string | undefined): void {
  owner = value;
}

/** The owner mark children get now, if any. */
export function childOwner(): string | undefined {
  return owner;
}

/** The operator's extra names and prefixes (config `passEnv`), for every child started after this. */
export function setPassEnv(names: readonly string[]): void {
  configured = [...names];
}

function passes(name: string): boolean {
  if (PASSED_ENV.includes(name) || PASSED_PREFIXES.some((p) => name.startsWith(p))) return true;
  return configured.some((c) => (c.endsWith('*') ? name.startsWith(c.slice(0, -1)) : name === c));
}

/**
 * The environment for a child: the allow-listed part of `from` (the daemon's environment), then
 * `extra` (what kindler sets for this child, e.g. KINDLER_* facts) on top. Use it with
 * `extendEnv: false` (execa) or as the whole `env` (child_process, simple-git).
 */
export function childEnv(extra: Record<string, string | undefined> = {}, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && passes(k)) out[k] = v;
  if (owner !== undefined) out[OWNER_ENV] = owner;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out;
}

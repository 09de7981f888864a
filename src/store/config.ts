/**
 * Loads the configuration file. Relative paths in the file are relative to the file's directory,
 * so the daemon behaves the same whatever its working directory is.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG, configProblems, type Config } from '../core/config.js';

/** The project's own root (where scripts/ and config/ ship). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export class ConfigError extends Error {}

/** Which config file to read: $KINDLER_CONFIG, else config/kindler.json in the package. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.KINDLER_CONFIG ? resolve(env.KINDLER_CONFIG) : resolve(PACKAGE_ROOT, 'config', 'kindler.json');
}

/** Reads, merges with defaults, resolves paths, validates. Throws ConfigError with one clear line. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = configPath(env);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`config ${file}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config ${file}: must be a JSON object`);
  const known = new Set([...Object.keys(DEFAULT_CONFIG), 'dataDir', 'scriptsDir', 'hooksDir', '$comment']);
  for (const k of Object.keys(raw)) if (!known.has(k)) throw new ConfigError(`config ${file}: unknown key "${k}"`);
  const base = dirname(file);
  const rel = (p: unknown, fallback: string) => (typeof p === 'string' ? (isAbsolute(p) ? p : resolve(base, p)) : fallback);
  const cfg: Config = {
    ...DEFAULT_CONFIG,
    ...(raw as Partial<Config>),
    timeouts: { ...DEFAULT_CONFIG.timeouts, ...((raw.timeouts as object) ?? {}) },
    ports: { ...DEFAULT_CONFIG.ports, ...((raw.ports as object) ?? {}) },
    defaults: { ...DEFAULT_CONFIG.defaults, ...((raw.defaults as object) ?? {}) },
    ssh: {
      ...DEFAULT_CONFIG.ssh,
      ...((raw.ssh as object) ?? {}),
      rateLimit: { ...DEFAULT_CONFIG.ssh.rateLimit, ...(((raw.ssh as Record<string, unknown>)?.rateLimit as object) ?? {}) },
    },
    dataDir: rel(raw.dataDir, resolve(PACKAGE_ROOT, 'data')),
    scriptsDir: rel(raw.scriptsDir, resolve(PACKAGE_ROOT, 'scripts')),
    hooksDir: '',
    schedules: { ...DEFAULT_CONFIG.schedules, ...((raw.schedules as object) ?? {}) },
    reconcile: { heal: { ...DEFAULT_CONFIG.reconcile.heal, ...((((raw.reconcile as Record<string, unknown>) ?? {}).heal as object) ?? {}) } },
    routes: { ...DEFAULT_CONFIG.routes, ...((raw.routes as object) ?? {}) },
    api: { ...DEFAULT_CONFIG.api, ...((raw.api as object) ?? {}) },
    access: { ...DEFAULT_CONFIG.access, ...((raw.access as object) ?? {}) },
    gitops: {
      ...DEFAULT_CONFIG.gitops,
      ...((raw.gitops as object) ?? {}),
      author: { ...DEFAULT_CONFIG.gitops.author, ...(((raw.gitops as Record<string, unknown>)?.author as object) ?? {}) },
    },
  };
  cfg.hooksDir = rel(raw.hooksDir, join(cfg.scriptsDir, 'hooks.d'));
  cfg.routes.configFile = rel((raw.routes as Record<string, unknown> | undefined)?.configFile, cfg.routes.configFile);
  const rawGit = (raw.gitops ?? {}) as Record<string, unknown>;
  if (typeof rawGit.repository === 'string' && rawGit.repository && !/^[a-z][a-z0-9+.-]*:\/\/|^[^/]+@[^:]+:/i.test(rawGit.repository))
    cfg.gitops.repository = rel(rawGit.repository, '');
  if (typeof rawGit.templateDir === 'string') cfg.gitops.templateDir = rel(rawGit.templateDir, '');
  const rawSsh = (raw.ssh ?? {}) as Record<string, unknown>;
  cfg.ssh.hostKeyFile = rel(rawSsh.hostKeyFile, resolve(PACKAGE_ROOT, DEFAULT_CONFIG.ssh.hostKeyFile));
  cfg.ssh.usersFile = rel(rawSsh.usersFile, resolve(PACKAGE_ROOT, DEFAULT_CONFIG.ssh.usersFile));
  if (env.KINDLER_DATA_DIR) cfg.dataDir = resolve(env.KINDLER_DATA_DIR);
  const problems = configProblems(cfg);
  if (problems.length) throw new ConfigError(`config ${file}: ${problems[0]}`);
  return cfg;
}

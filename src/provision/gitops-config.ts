/**
 * GitOps settings and names (see gitops.ts): the config and its checks, URL redaction, branch and
 * archive tag names, and the cluster spec file a branch holds. Pure apart from nothing: no git here.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Cluster } from '../core/types.js';
import { sanitizeLine } from '../core/text.js';

export interface GitopsConfig {
  /** Whether kindler maintains a GitOps branch per cluster at all. */
  enabled: boolean;
  /**
   * The GitOps repository: an absolute local path, or a URL (`file://`, `https://`, `http://`, `ssh://`,
   * `git://`, or scp-like `git@host:org/repo.git`). It must not carry credentials: `user:password@` is
   * refused, and so is any userinfo in an http(s) URL (a bare token is a credential too). Authenticate with
   * a credential helper or an ssh key/agent configured for the daemon's user.
   */
  repository: string;
  /** Branch every cluster branch is cut from. Default `main`. */
  baseBranch?: string;
  /**
   * Optional directory (absolute) whose files are copied, recursively, onto every cluster branch, relative to
   * the repository root. `{{name}}`, `{{domain}}` and `{{provider}}` are replaced in file contents and in
   * paths; other `{{…}}` text (Helm templates, say) is left alone. Symlinks are refused; files containing a
   * NUL byte are copied unchanged; the executable bit is kept.
   */
  templateDir?: string;
  /**
   * Absolute path of kindler's own clone of the repository (e.g. `<dataDir>/gitops`). kindler owns it:
   * its working tree is reset and cleaned before every operation. It must be missing, empty, or a clone.
   */
  workDir: string;
  /** Identity for kindler's commits and archive tags (passed as `-c user.name=… -c user.email=…`). */
  author: { name: string; email: string };
  /** Kill a git command that produces no output for this long. Default 60 000 ms. */
  timeoutMs?: number;
}

export type ArchiveResult = { tag: string; commit: string } | { absent: true };

export const DEFAULT_TIMEOUT_MS = 60_000;
const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const ALLOWED_SCHEMES = ['file', 'http', 'https', 'ssh', 'git', 'git+ssh', 'ssh+git'];
const SCP_LIKE = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!\/\/)[^\s]+$/;
export const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;
export const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** Replaces the userinfo of every `scheme://userinfo@` in a text with `***`: `https://***@host/...`. */
export function redactUrl(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]+@/gi, '$1***@');
}

/** Null when the configuration is usable; else one line naming the problem (URLs in it are redacted). */
export function gitopsConfigProblem(cfg: GitopsConfig): string | null {
  const repo = typeof cfg?.repository === 'string' ? cfg.repository.trim() : '';
  const cred = credentialProblem(repo);
  if (cred) return cred;
  if (!cfg.enabled) return null;
  return fullProblem(cfg);
}

function credentialProblem(repo: string): string | null {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)@/i.exec(repo);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  const userinfo = m[2]!;
  const hint = 'use a credential helper or an ssh key instead';
  if (userinfo.includes(':')) return `gitops.repository: credentials in the URL are not allowed (${hint}): ${redactUrl(repo)}`;
  if (scheme === 'http' || scheme === 'https') {
    return `gitops.repository: an http(s) URL must not carry a user or token (${hint}; set a user name with credential.<url>.username): ${redactUrl(repo)}`;
  }
  return null;
}

export function fullProblem(cfg: GitopsConfig): string | null {
  const repo = typeof cfg.repository === 'string' ? cfg.repository.trim() : '';
  const cred = credentialProblem(repo);
  if (cred) return cred;
  if (!repo) return 'gitops.repository: must not be empty';
  if (/[\s\x00-\x1f\x7f]/.test(repo)) return 'gitops.repository: must not contain whitespace or control characters';
  if (repo.startsWith('-')) return 'gitops.repository: must not start with "-"';
  const scheme = URL_SCHEME.exec(repo)?.[1]?.toLowerCase();
  if (scheme) {
    if (!ALLOWED_SCHEMES.includes(scheme)) return `gitops.repository: unsupported URL scheme "${scheme}" (use ${ALLOWED_SCHEMES.join(', ')})`;
  } else if (repo.includes('::')) {
    return 'gitops.repository: remote helpers ("transport::address") are not allowed';
  } else if (!isAbsolute(repo) && !SCP_LIKE.test(repo)) {
    return `gitops.repository: a local path must be absolute (got ${JSON.stringify(sanitizeLine(repo))})`;
  }
  const base = cfg.baseBranch ?? 'main';
  if (!branchNameOk(base)) return `gitops.baseBranch: not a valid branch name: ${JSON.stringify(sanitizeLine(base))}`;
  if (cfg.templateDir !== undefined && (typeof cfg.templateDir !== 'string' || !isAbsolute(cfg.templateDir))) {
    return 'gitops.templateDir: must be an absolute path';
  }
  if (typeof cfg.workDir !== 'string' || !isAbsolute(cfg.workDir)) return 'gitops.workDir: must be an absolute path';
  if (resolve(cfg.workDir) === '/') return 'gitops.workDir: must not be the root directory';
  const a = cfg.author;
  if (!a || typeof a.name !== 'string' || !a.name.trim() || /[<>\n\r\x00]/.test(a.name)) {
    return 'gitops.author.name: must be a non-empty name without "<", ">" or newlines';
  }
  if (typeof a.email !== 'string' || !/^[^\s<>@]+@[^\s<>@]+$/.test(a.email)) return 'gitops.author.email: must look like user@host';
  if (cfg.timeoutMs !== undefined && !(Number.isInteger(cfg.timeoutMs) && cfg.timeoutMs > 0)) {
    return 'gitops.timeoutMs: must be a positive integer';
  }
  return null;
}

export function branchNameOk(b: string): boolean {
  return (
    /^[A-Za-z0-9._/-]+$/.test(b) &&
    !b.startsWith('-') && !b.startsWith('/') && !b.endsWith('/') && !b.endsWith('.') && !b.endsWith('.lock') &&
    !b.includes('..') && !b.includes('//') && !b.split('/').some((s) => s.startsWith('.'))
  );
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function archiveStamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** The archive tag convention: `archive/NAME-YYYYMMDDTHHMMSSZ`. */
export function archiveTagName(name: string, d = new Date()): string {
  return `archive/${name}-${archiveStamp(d)}`;
}

/** The spec written to `clusters/NAME/cluster.json`: fixed key order, no secrets, no kubeconfig. */
export function clusterSpecJson(c: Cluster, domain: string): string {
  const spec = {
    name: c.name,
    provider: c.provider,
    servers: c.servers,
    agents: c.agents,
    image: c.image ?? null,
    ports: { http: c.httpPort, https: c.httpsPort, api: c.apiPort },
    subnet: c.subnet ?? null,
    domain,
    owner: c.owner,
    createdAt: c.createdAt,
  };
  return `${JSON.stringify(spec, null, 2)}\n`;
}


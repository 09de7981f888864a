/**
 * GitOps: every cluster gets a branch named exactly like the cluster in one GitOps repository.
 *
 * One convention (upstream lesson 11):
 * - branch `NAME`, cut from `origin/<baseBranch>`, holding `clusters/NAME/cluster.json` plus the rendered
 *   template files; commit message `kindler: cluster NAME`;
 * - deletion archives first: annotated tag `archive/NAME-YYYYMMDDTHHMMSSZ` at the remote branch head, then
 *   the branch is deleted locally and remotely;
 * - every push is verified with `git ls-remote` afterwards; a push that git reports as done but that the
 *   remote does not show is a failure.
 *
 * All git commands run in a kindler-owned clone (`workDir`, an absolute path) with simple-git's `baseDir`
 * set, so the process working directory never matters. Credentials come only from git's own mechanisms
 * (credential helper, ssh agent/key); URLs with credentials are refused and every URL that reaches a log
 * line or an error message is redacted. All operations go through one in-process queue because they share
 * one working tree.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { GitError, simpleGit, type SimpleGit } from 'simple-git';
import { childEnv } from '../core/childenv.js';
import { Serial } from '../core/serial.js';
import type { Cluster } from '../core/types.js';
import { failed, refused, usageError } from '../core/errors.js';
import { looksLikeName } from '../core/names.js';
import { cleanLine, sanitizeLine } from '../core/text.js';

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

const DEFAULT_TIMEOUT_MS = 60_000;
const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const ALLOWED_SCHEMES = ['file', 'http', 'https', 'ssh', 'git', 'git+ssh', 'ssh+git'];
const SCP_LIKE = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!\/\/)[^\s]+$/;
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;
const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

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

function fullProblem(cfg: GitopsConfig): string | null {
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

function branchNameOk(b: string): boolean {
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

/** A git command that exited non-zero: whole output kept (stderr then stdout) plus the exit code. */
class GitCommandFailed extends GitError {
  constructor(readonly exitCode: number | null, text: string) {
    // A GitError subclass, so simple-git passes it through instead of wrapping it as "Error: …".
    super(undefined, text.trim() ? `${text.trim()}\n(exit code ${exitCode ?? 'none'})` : `exit code ${exitCode ?? 'none'}, no output`);
  }
}

interface RenderedFile {
  path: string;
  data: Buffer;
  executable: boolean;
}

export class Gitops {
  readonly cfg: Readonly<GitopsConfig> & { baseBranch: string; timeoutMs: number };
  private readonly log: (line: string) => void;
  private readonly queue = new Serial();

  /**
   * Checks the config as if enabled (throws a `refused` KindlerError naming the problem, URL redacted).
   * `log` receives one sanitized, redacted line per git command (and per refusal found along the way).
   */
  constructor(cfg: GitopsConfig, log: (line: string) => void) {
    const p = fullProblem(cfg);
    if (p) throw refused(p);
    this.cfg = {
      ...cfg,
      repository: cfg.repository.trim(),
      baseBranch: cfg.baseBranch ?? 'main',
      workDir: resolve(cfg.workDir),
      templateDir: cfg.templateDir === undefined ? undefined : resolve(cfg.templateDir),
      timeoutMs: cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
    this.log = log;
  }

  /** Clones the repository into workDir, or fetches (with prune) when the clone exists. */
  ensureClone(): Promise<void> {
    return this.serial(() => this.ensureCloneNow('ensureClone', true));
  }

  /**
   * Creates or updates branch NAME so it holds the cluster's spec and the rendered template; pushes and
   * verifies. Identical content on the remote branch means success without a new commit; other content
   * gives a new commit on top of the remote branch (no force push). `clusters/NAME/` is rewritten whole;
   * other template paths are overwritten, never removed.
   */
  createBranch(c: Cluster, domain: string): Promise<{ branch: string; commit: string }> {
    return this.serial(() => this.createBranchNow(c, domain));
  }

  /** Tags the remote branch head `archive/NAME-<UTC stamp>`, pushes the tag, deletes the branch; verified. */
  archiveAndDelete(name: string): Promise<ArchiveResult> {
    return this.serial(() => this.archiveNow(name));
  }

  /** The remote head commit of each named branch, or null when the branch does not exist (ls-remote). */
  status(names: readonly string[]): Promise<Map<string, string | null>> {
    return this.serial(async () => {
      await this.ensureCloneNow('status', false);
      const heads = await this.lsRemote('status', ['--heads', 'origin']);
      const out = new Map<string, string | null>();
      for (const n of names) out.set(n, heads.get(`refs/heads/${n}`) ?? null);
      return out;
    });
  }

  // ---------------------------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  private emit(line: string): void {
    try {
      this.log(cleanLine(redactUrl(line), 2000));
    } catch {
      /* a broken logger must not break git work */
    }
  }

  private client(baseDir: string): SimpleGit {
    const { name, email } = this.cfg.author;
    return simpleGit({
      baseDir,
      config: [
        `user.name=${name}`,
        `user.email=${email}`,
        'commit.gpgsign=false',
        'tag.gpgsign=false',
        'tag.forceSignAnnotated=false',
        'core.autocrlf=false',
        'advice.detachedHead=false',
      ],
      timeout: { block: this.cfg.timeoutMs },
      // Any non-zero exit is a failure (simple-git's default needs stderr output too); keep everything.
      errors: (error, result) => {
        if (result.exitCode === 0) return error;
        const output = Buffer.concat([...result.stdErr, ...result.stdOut]).toString('utf8');
        // simple-git's own error repeats the output; keep it only when it adds something (a timeout, say).
        const adds = error instanceof Error && error.message.split('\n').some((l) => l.trim() && !output.includes(l.trim()));
        const extra = adds ? `\n${(error as Error).message}` : '';
        return new GitCommandFailed(result.exitCode, output + extra);
      },
      // The allow-listed environment only (core/childenv.ts); GIT_* names are left out because
      // simple-git refuses them when given explicitly (its environment guard).
    }).env(Object.fromEntries(Object.entries(childEnv()).filter(([k]) => !/^git_/i.test(k))));
  }

  /**
   * Runs one git command, logs one line, and throws `gitops <op>: git <args> failed: <whole message>`.
   * Exit codes listed in `allowExit` (e.g. 1 for `git config --get` of a missing key) return ''.
   */
  private async git(op: string, args: string[], opts: { baseDir?: string; allowExit?: number[] } = {}): Promise<string> {
    const shownArgs = args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
    const started = Date.now();
    try {
      const out = await this.client(opts.baseDir ?? this.cfg.workDir).raw(args);
      this.emit(`gitops ${op}: git ${shownArgs} (ok, ${Date.now() - started} ms)`);
      return out;
    } catch (e) {
      if (e instanceof GitCommandFailed && e.exitCode !== null && opts.allowExit?.includes(e.exitCode)) {
        this.emit(`gitops ${op}: git ${shownArgs} (exit ${e.exitCode}, ${Date.now() - started} ms)`);
        return '';
      }
      const raw = e instanceof Error ? e.message : String(e);
      let full = redactUrl(raw).split('\n').map((l) => sanitizeLine(l).trimEnd()).join('\n').trim() || 'no message';
      if (/block timeout reached/.test(full)) full += `\n(git produced no output for ${this.cfg.timeoutMs} ms and was stopped)`;
      const gist = full.split('\n').filter((l) => l.trim() && !/^(Pushing to |To |Done$)/.test(l)).join(' | ') || full;
      this.emit(`gitops ${op}: git ${shownArgs} (failed, ${Date.now() - started} ms): ${gist}`);
      throw failed(redactUrl(`gitops ${op}: git ${shownArgs} failed: ${full}`));
    }
  }

  private fail(op: string, message: string): never {
    const m = redactUrl(`gitops ${op}: ${message}`);
    this.emit(m);
    throw failed(m);
  }

  private checkName(op: string, name: string): void {
    if (!looksLikeName(name)) throw usageError(`gitops ${op}: not a cluster name: ${JSON.stringify(sanitizeLine(name))}`, 'name');
    if (name === this.cfg.baseBranch) throw usageError(`gitops ${op}: a cluster cannot be named like the base branch "${name}"`, 'name');
  }

  /** Makes sure workDir is a clone of the repository (cloning when needed); fetches when asked. */
  private async ensureCloneNow(op: string, fetch: boolean): Promise<void> {
    const { workDir, repository } = this.cfg;
    const dotGit = join(workDir, '.git');
    if (!existsSync(dotGit)) {
      if (existsSync(workDir)) {
        if (!lstatSync(workDir).isDirectory()) this.fail(op, `workDir ${workDir} exists and is not a directory`);
        if (readdirSync(workDir).length > 0) {
          this.fail(op, `workDir ${workDir} is not empty and is not a git clone; kindler will not use it (move it away)`);
        }
      }
      mkdirSync(dirname(workDir), { recursive: true });
      await this.git(op, ['clone', '--origin', 'origin', '--no-checkout', '--', repository, workDir], { baseDir: dirname(workDir) });
      // Make sure the clone really is this directory, not some enclosing repository.
      await this.checkTopLevel(op);
      return;
    }
    await this.checkTopLevel(op);
    const url = (await this.git(op, ['config', '--get', 'remote.origin.url'], { allowExit: [1] })).trim();
    if (!url) await this.git(op, ['remote', 'add', 'origin', repository]);
    else if (url !== repository) await this.git(op, ['remote', 'set-url', 'origin', repository]);
    if (fetch) await this.git(op, ['fetch', '--prune', 'origin']);
  }

  private async checkTopLevel(op: string): Promise<void> {
    const top = (await this.git(op, ['rev-parse', '--show-toplevel'])).trim();
    if (realpathSync(top) !== realpathSync(this.cfg.workDir)) {
      this.fail(op, `workDir ${this.cfg.workDir} is not the top of its own git clone (git found ${top})`);
    }
  }

  /** Local refs → { commit, checkedOut } (one for-each-ref; missing refs are simply absent). */
  private async localRefs(op: string, refs: string[]): Promise<Map<string, { commit: string; checkedOut: boolean }>> {
    const out = await this.git(op, ['for-each-ref', '--format=%(refname) %(objectname) %(HEAD)', ...refs]);
    const found = new Map<string, { commit: string; checkedOut: boolean }>();
    for (const line of out.split('\n')) {
      const [ref, commit, head] = line.trim().split(' ');
      if (ref && commit && SHA.test(commit) && refs.includes(ref)) found.set(ref, { commit, checkedOut: head === '*' });
    }
    return found;
  }

  /** `git ls-remote <args>` parsed as ref → object id. */
  private async lsRemote(op: string, args: string[]): Promise<Map<string, string>> {
    const out = await this.git(op, ['ls-remote', ...args]);
    const refs = new Map<string, string>();
    for (const line of out.split('\n')) {
      const m = /^([0-9a-f]{40,64})\t(\S+)$/.exec(line.trim());
      if (m) refs.set(m[2]!, m[1]!);
    }
    return refs;
  }

  private async remoteHead(op: string, name: string): Promise<string | null> {
    return (await this.lsRemote(op, ['origin', `refs/heads/${name}`])).get(`refs/heads/${name}`) ?? null;
  }

  /** The remote branch head and the cluster's archive tags (tag → commit it points at), in one ls-remote. */
  private async remoteState(op: string, name: string): Promise<{ head: string | null; tags: Map<string, string> }> {
    const refs = await this.lsRemote(op, ['origin', `refs/heads/${name}`, `refs/tags/archive/${name}-*`]);
    const exact = new RegExp(`^refs/tags/(archive/${name}-\\d{8}T\\d{6}Z)$`);
    const tags = new Map<string, string>();
    for (const [ref, id] of refs) {
      const m = exact.exec(ref);
      if (m) tags.set(m[1]!, refs.get(`${ref}^{}`) ?? id);
    }
    return { head: refs.get(`refs/heads/${name}`) ?? null, tags };
  }

  private async createBranchNow(c: Cluster, domain: string): Promise<{ branch: string; commit: string }> {
    const op = 'createBranch';
    const name = c.name;
    this.checkName(op, name);
    if (!DOMAIN.test(domain)) throw usageError(`gitops ${op}: not a domain name: ${JSON.stringify(sanitizeLine(domain))}`, 'domain');
    const files = this.render(op, c, domain);

    await this.ensureCloneNow(op, true);
    const base = this.cfg.baseBranch;
    const local = await this.localRefs(op, [`refs/remotes/origin/${base}`, `refs/remotes/origin/${name}`]);
    const baseHead = local.get(`refs/remotes/origin/${base}`)?.commit;
    if (!baseHead) this.fail(op, `base branch "${base}" does not exist on ${this.cfg.repository}`);
    const remote = local.get(`refs/remotes/origin/${name}`)?.commit ?? null;

    await this.git(op, ['checkout', '--force', '--no-track', '-B', name, remote ?? baseHead]);
    await this.git(op, ['clean', '-ffdx']);
    const wd = this.cfg.workDir;
    safeRemove(wd, `clusters/${name}`);
    for (const f of files) safeWrite(wd, f.path, f.data, f.executable);
    await this.git(op, ['add', '--all', '--force']); // --force: a base-branch .gitignore must not drop template files
    const changes = (await this.git(op, ['status', '--porcelain'])).trim();

    if (remote && !changes) {
      const now = await this.remoteHead(op, name);
      if (now !== remote) this.fail(op, `branch ${name} changed on the remote while it was checked (expected ${remote}, found ${now ?? 'nothing'})`);
      this.emit(`gitops ${op}: branch ${name} already up to date at ${remote}`);
      return { branch: name, commit: remote };
    }
    await this.git(op, ['commit', '--quiet', '--allow-empty', '--no-verify', '-m', `kindler: cluster ${name}`]);
    const commit = (await this.git(op, ['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
    await this.git(op, ['push', '--porcelain', '--set-upstream', 'origin', `refs/heads/${name}:refs/heads/${name}`]);
    const pushed = await this.remoteHead(op, name);
    if (pushed !== commit) {
      this.fail(op, `push of ${name} not confirmed: the remote shows ${pushed ?? 'no branch'}, expected ${commit}`);
    }
    return { branch: name, commit };
  }

  private async archiveNow(name: string): Promise<ArchiveResult> {
    const op = 'archiveAndDelete';
    this.checkName(op, name);
    await this.ensureCloneNow(op, true);
    const baseRef = `refs/remotes/origin/${this.cfg.baseBranch}`;
    const local = await this.localRefs(op, [baseRef, `refs/heads/${name}`, `refs/remotes/origin/${name}`]);
    const branch = local.get(`refs/heads/${name}`);
    if (branch) {
      // Leave the branch so it can be deleted locally.
      if (branch.checkedOut) await this.git(op, ['checkout', '--force', '--detach', local.get(baseRef)?.commit ?? 'HEAD']);
      await this.git(op, ['branch', '-D', name]);
    }

    const { head, tags } = await this.remoteState(op, name);
    if (!head) {
      this.emit(`gitops ${op}: branch ${name} does not exist on the remote; nothing to archive`);
      return { absent: true };
    }
    if (local.get(`refs/remotes/origin/${name}`)?.commit !== head) {
      await this.git(op, ['fetch', 'origin', `+refs/heads/${name}:refs/remotes/origin/${name}`]);
    }

    // An earlier, interrupted run may already have archived this very commit: reuse that tag.
    const existing = [...tags].find(([, id]) => id === head)?.[0];
    const tag = existing ?? archiveTagName(name);
    if (!existing) {
      await this.git(op, ['tag', '--force', '--annotate', '-m', `kindler: archive cluster ${name}`, tag, head]);
      await this.git(op, ['push', '--porcelain', 'origin', `refs/tags/${tag}:refs/tags/${tag}`]);
    }
    // Delete only the commit that was archived: a lease makes a concurrent update fail the delete.
    await this.git(op, ['push', '--porcelain', `--force-with-lease=refs/heads/${name}:${head}`, 'origin', `:refs/heads/${name}`]);

    const after = await this.remoteState(op, name);
    if (after.head) this.fail(op, `delete of branch ${name} not confirmed: the remote still shows it at ${after.head}`);
    const tagged = after.tags.get(tag);
    if (tagged !== head) this.fail(op, `archive tag ${tag} not confirmed: the remote shows ${tagged ?? 'no tag'}, expected ${head}`);
    return { tag, commit: head };
  }

  /** Reads and renders the template (before touching git, so a bad template fails early). */
  private render(op: string, c: Cluster, domain: string): RenderedFile[] {
    const vars: Record<string, string> = { name: c.name, domain, provider: c.provider };
    const fill = (s: string) => s.replace(/\{\{(name|domain|provider)\}\}/g, (_m, k: string) => vars[k]!);
    const specPath = `clusters/${c.name}/cluster.json`;
    const out: RenderedFile[] = [];
    const dir = this.cfg.templateDir;
    if (dir) {
      let entries: string[];
      try {
        entries = walk(dir, '');
      } catch (e) {
        this.fail(op, `template directory ${dir} cannot be read: ${(e as Error).message}`);
      }
      for (const rel of entries) {
        const src = join(dir, rel);
        const st = lstatSync(src);
        if (st.isSymbolicLink()) this.fail(op, `template file ${rel} is a symlink; symlinks are not supported`);
        const target = fill(rel);
        const parts = target.split('/');
        if (parts.some((p) => p === '' || p === '.' || p === '..' || p.toLowerCase() === '.git')) {
          this.fail(op, `template path ${rel} renders to an unusable path ${JSON.stringify(target)}`);
        }
        if (target === specPath) this.fail(op, `template file ${rel} would overwrite ${specPath}, which kindler writes`);
        const data = readFileSync(src);
        out.push({ path: target, data: data.includes(0) ? data : Buffer.from(fill(data.toString('utf8')), 'utf8'), executable: (st.mode & 0o111) !== 0 });
      }
    }
    out.push({ path: specPath, data: Buffer.from(clusterSpecJson(c, domain), 'utf8'), executable: false });
    return out;
  }
}

/** Every file under dir (relative, `/`-separated, sorted); symlinks are returned so they can be refused. */
function walk(dir: string, prefix: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** Refuses to go through a symlink on the way to rel (a checked-out symlink must not redirect writes). */
function checkNoSymlink(root: string, rel: string): void {
  let p = root;
  for (const part of rel.split('/')) {
    p = join(p, part);
    if (!existsSync(p) && !isDanglingLink(p)) return;
    if (lstatSync(p).isSymbolicLink()) throw failed(`gitops: refusing to write through the symlink ${rel} in the clone`);
  }
}

function isDanglingLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function safeRemove(root: string, rel: string): void {
  const parent = rel.split('/').slice(0, -1).join('/');
  if (parent) checkNoSymlink(root, parent);
  rmSync(join(root, rel), { recursive: true, force: true });
}

function safeWrite(root: string, rel: string, data: Buffer, executable: boolean): void {
  checkNoSymlink(root, rel);
  const target = join(root, rel);
  mkdirSync(dirname(target), { recursive: true });
  if (existsSync(target) && lstatSync(target).isDirectory()) throw failed(`gitops: ${rel} is a directory in the clone`);
  writeFileSync(target, data);
  chmodSync(target, executable ? 0o755 : 0o644);
}

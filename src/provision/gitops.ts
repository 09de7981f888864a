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
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { GitError, simpleGit, type SimpleGit } from 'simple-git';
import { childEnv } from '../core/childenv.js';
import { Serial } from '../core/serial.js';
import type { Cluster } from '../core/types.js';
import { failed, refused, usageError } from '../core/errors.js';
import { looksLikeName } from '../core/names.js';
import { cleanLine, sanitizeLine } from '../core/text.js';
import { archiveTagName, clusterSpecJson, DEFAULT_TIMEOUT_MS, DOMAIN, fullProblem, redactUrl, SHA, type ArchiveResult, type GitopsConfig } from './gitops-config.js';
import { safeRemove, safeWrite, walk } from './gitops-files.js';

export { archiveStamp, archiveTagName, clusterSpecJson, gitopsConfigProblem, redactUrl, type ArchiveResult, type GitopsConfig } from './gitops-config.js';

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
        const extra = adds ? `\n${(error).message}` : '';
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


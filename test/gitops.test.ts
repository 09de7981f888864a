/**
 * GitOps module against real git: a bare repository remote reached over file://, a kindler-owned clone,
 * and the process cwd moved to an unrelated directory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from '../src/core/types.js';
import { KindlerError } from '../src/core/errors.js';
import { Gitops, archiveStamp, gitopsConfigProblem, redactUrl, type GitopsConfig } from '../src/provision/gitops.js';

/** Plain git for setting up and inspecting the remote; ambient GIT_* variables removed. */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_')));
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', ...args], {
    cwd,
    env: cleanEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** A bare repo with one commit on main, created with --initial-branch=main. */
function makeRemote(root: string, label: string): string {
  const bare = join(root, `${label}.git`);
  git(root, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
  const seed = join(root, `${label}-seed`);
  git(root, 'init', '--quiet', '--initial-branch=main', seed);
  writeFileSync(join(seed, 'README.md'), '# gitops\n');
  git(seed, 'add', 'README.md');
  git(seed, 'commit', '--quiet', '-m', 'initial');
  git(seed, 'push', '--quiet', `file://${bare}`, 'main:main');
  return bare;
}

function remoteHeads(bare: string): Map<string, string> {
  const out = git(bare, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads', 'refs/tags');
  return new Map(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );
}

function cluster(name: string, extra: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 0,
    image: 'rancher/k3s:v1.31.4-k3s1',
    httpPort: 18080,
    httpsPort: 18443,
    apiPort: 16443,
    subnet: '10.101.0.0/16',
    owner: 'alice',
    createdAt: '2025-01-02T03:04:05.000Z',
    desired: 'present',
    actual: 'running',
    kubeContext: `k3d-${name}`,
    kubeconfig: '/secret/kubeconfigs/SECRET-KUBECONFIG-CONTENT',
    lastError: 'token=hunter2',
    updatedAt: '2025-01-02T03:04:05.000Z',
    ...extra,
  };
}

const root = realpathSync(mkdtempSync(join(tmpdir(), 'kindler-gitops-')));
const elsewhere = join(root, 'unrelated-cwd');
const originalCwd = process.cwd();

before(() => {
  mkdirSync(elsewhere, { recursive: true });
  process.chdir(elsewhere); // prove nothing depends on the process cwd
});
after(() => {
  process.chdir(originalCwd);
  rmSync(root, { recursive: true, force: true });
});

function config(bare: string, label: string, extra: Partial<GitopsConfig> = {}): GitopsConfig {
  return {
    enabled: true,
    repository: `file://${bare}`,
    baseBranch: 'main',
    workDir: join(root, 'data', label, 'gitops'),
    author: { name: 'kindler bot', email: 'kindler@example.invalid' },
    timeoutMs: 20_000,
    ...extra,
  };
}

describe('config check and redaction', () => {
  const ok = config('/srv/git/gitops.git', 'cfg');

  test('a usable config passes; a disabled one only needs a credential-free URL', () => {
    assert.equal(gitopsConfigProblem(ok), null);
    assert.equal(gitopsConfigProblem({ ...ok, repository: '/srv/git/gitops.git' }), null);
    assert.equal(gitopsConfigProblem({ ...ok, repository: 'git@github.com:org/gitops.git' }), null);
    assert.equal(gitopsConfigProblem({ ...ok, repository: 'ssh://git@git.example.com/org/gitops.git' }), null);
    assert.equal(gitopsConfigProblem({ ...ok, enabled: false, workDir: 'relative' }), null);
  });

  test('a URL with user:password@ is refused, and the refusal redacts it', () => {
    for (const repository of ['https://alice:s3cret@git.example.com/org/gitops.git', 'ssh://bob:pw123@git.example.com/r.git']) {
      for (const enabled of [true, false]) {
        const p = gitopsConfigProblem({ ...ok, enabled, repository });
        assert.ok(p, `${repository} must be refused`);
        assert.match(p, /credentials/);
        assert.doesNotMatch(p, /s3cret|pw123|alice|bob/);
        assert.match(p, /:\/\/\*\*\*@git\.example\.com\//);
      }
    }
    // a bare token in an http(s) URL is a credential too
    const t = gitopsConfigProblem({ ...ok, repository: 'https://ghp_abcdef@github.com/org/gitops.git' });
    assert.ok(t);
    assert.doesNotMatch(t, /ghp_abcdef/);
    assert.match(t, /https:\/\/\*\*\*@github\.com\/org\/gitops\.git/);
  });

  test('the constructor refuses the same config with a redacted message', () => {
    assert.throws(
      () => new Gitops({ ...ok, repository: 'https://alice:s3cret@git.example.com/org/gitops.git' }, () => {}),
      (e: unknown) => e instanceof KindlerError && e.kind === 'refused' && !e.message.includes('s3cret') && e.message.includes('https://***@git.example.com/'),
    );
  });

  test('cwd-dependent or unsafe settings are refused', () => {
    assert.match(gitopsConfigProblem({ ...ok, workDir: 'data/gitops' }) ?? '', /workDir.*absolute/);
    assert.match(gitopsConfigProblem({ ...ok, repository: 'repos/gitops.git' }) ?? '', /absolute/);
    assert.match(gitopsConfigProblem({ ...ok, templateDir: 'template' }) ?? '', /templateDir/);
    assert.match(gitopsConfigProblem({ ...ok, repository: 'ext::sh -c touch% /tmp/x' }) ?? '', /repository/);
    assert.match(gitopsConfigProblem({ ...ok, repository: '--upload-pack=touch /tmp/x' }) ?? '', /repository/);
    assert.match(gitopsConfigProblem({ ...ok, baseBranch: '../x' }) ?? '', /baseBranch/);
    assert.match(gitopsConfigProblem({ ...ok, author: { name: 'x', email: 'nope' } }) ?? '', /email/);
  });

  test('redactUrl hides userinfo anywhere in a multi-line message', () => {
    const msg = "Pushing to https://alice:s3cret@h.example/r.git\nfatal: unable to access 'https://tok@h.example/r.git/': 403";
    const r = redactUrl(msg);
    assert.equal(r, "Pushing to https://***@h.example/r.git\nfatal: unable to access 'https://***@h.example/r.git/': 403");
  });

  test('archive stamps are UTC YYYYMMDDTHHMMSSZ', () => {
    assert.equal(archiveStamp(new Date('2025-03-04T05:06:07.890Z')), '20250304T050607Z');
  });
});

describe('branches against a bare remote over file://', () => {
  let bare: string;
  let gitops: Gitops;
  const lines: string[] = [];
  let first: { branch: string; commit: string };
  let updated: { branch: string; commit: string };

  before(() => {
    bare = makeRemote(root, 'remote');
    const tpl = join(root, 'template');
    mkdirSync(join(tpl, 'apps', 'nested'), { recursive: true });
    writeFileSync(join(tpl, 'apps', '{{name}}.yaml'), 'name: {{name}}\nhost: {{name}}.{{domain}}\nprovider: {{provider}}\nhelm: {{ .Values.keep }}\n');
    writeFileSync(join(tpl, 'apps', 'nested', 'static.txt'), 'unchanged\n');
    writeFileSync(join(tpl, 'hook.sh'), '#!/bin/sh\necho {{name}}\n');
    chmodSync(join(tpl, 'hook.sh'), 0o755);
    gitops = new Gitops(config(bare, 'main', { templateDir: tpl }), (l) => lines.push(l));
  });

  test('createBranch pushes branch NAME with cluster.json and the rendered template, verified', async () => {
    first = await gitops.createBranch(cluster('alpha'), 'dev.example.test');
    assert.equal(first.branch, 'alpha');
    assert.equal(remoteHeads(bare).get('refs/heads/alpha'), first.commit);
    assert.equal(git(bare, 'rev-parse', 'alpha^'), git(bare, 'rev-parse', 'main'), 'cut from origin/main');

    const json = git(bare, 'show', `${first.commit}:clusters/alpha/cluster.json`);
    const raw = execFileSync('git', ['cat-file', 'blob', `${first.commit}:clusters/alpha/cluster.json`], { cwd: bare, env: cleanEnv, encoding: 'utf8' });
    assert.ok(raw.endsWith('}\n'), 'trailing newline');
    const spec = JSON.parse(json) as Record<string, unknown>;
    assert.deepEqual(Object.keys(spec), ['name', 'provider', 'servers', 'agents', 'image', 'ports', 'subnet', 'domain', 'owner', 'createdAt']);
    assert.deepEqual(spec, {
      name: 'alpha',
      provider: 'k3d',
      servers: 1,
      agents: 0,
      image: 'rancher/k3s:v1.31.4-k3s1',
      ports: { http: 18080, https: 18443, api: 16443 },
      subnet: '10.101.0.0/16',
      domain: 'dev.example.test',
      owner: 'alice',
      createdAt: '2025-01-02T03:04:05.000Z',
    });
    assert.doesNotMatch(raw, /SECRET|kubeconfig|hunter2/i);

    assert.equal(git(bare, 'show', `${first.commit}:apps/alpha.yaml`), 'name: alpha\nhost: alpha.dev.example.test\nprovider: k3d\nhelm: {{ .Values.keep }}');
    assert.equal(git(bare, 'show', `${first.commit}:apps/nested/static.txt`), 'unchanged');
    assert.match(git(bare, 'ls-tree', first.commit, 'hook.sh'), /^100755 /);
    assert.equal(git(bare, 'show', `${first.commit}:README.md`), '# gitops');
    assert.equal(git(bare, 'log', '-1', '--format=%an <%ae>|%cn|%s', first.commit), 'kindler bot <kindler@example.invalid>|kindler bot|kindler: cluster alpha');
  });

  test('createBranch again with the same content makes no new commit', async () => {
    const again = await gitops.createBranch(cluster('alpha'), 'dev.example.test');
    assert.deepEqual(again, first);
    assert.equal(remoteHeads(bare).get('refs/heads/alpha'), first.commit);
    assert.equal(git(bare, 'rev-list', '--count', 'alpha'), '2');
  });

  test('createBranch with other content updates the branch with a new commit on top', async () => {
    updated = await gitops.createBranch(cluster('alpha', { agents: 2 }), 'dev.example.test');
    assert.notEqual(updated.commit, first.commit);
    assert.equal(git(bare, 'rev-parse', `${updated.commit}^`), first.commit);
    assert.equal(remoteHeads(bare).get('refs/heads/alpha'), updated.commit);
    assert.equal((JSON.parse(git(bare, 'show', 'alpha:clusters/alpha/cluster.json')) as { agents: number }).agents, 2);
  });

  test('concurrent calls are serialized through one queue', async () => {
    const [b, c] = await Promise.all([
      gitops.createBranch(cluster('beta', { provider: 'kind' }), 'dev.example.test'),
      gitops.createBranch(cluster('gamma'), 'dev.example.test'),
    ]);
    const heads = remoteHeads(bare);
    assert.equal(heads.get('refs/heads/beta'), b.commit);
    assert.equal(heads.get('refs/heads/gamma'), c.commit);
    assert.match(git(bare, 'show', 'beta:apps/beta.yaml'), /provider: kind/);
    // gamma's branch holds only gamma's files, not beta's
    assert.doesNotMatch(git(bare, 'ls-tree', '-r', '--name-only', 'gamma'), /beta/);
  });

  test('status reports remote heads, null for missing branches', async () => {
    const s = await gitops.status(['alpha', 'beta', 'nope']);
    assert.deepEqual(
      [...s],
      [
        ['alpha', updated.commit],
        ['beta', remoteHeads(bare).get('refs/heads/beta')],
        ['nope', null],
      ],
    );
  });

  test('archiveAndDelete tags the head, pushes the tag and deletes the branch, verified', async () => {
    const r = await gitops.archiveAndDelete('alpha');
    assert.ok('tag' in r);
    assert.match(r.tag, /^archive\/alpha-\d{8}T\d{6}Z$/);
    assert.equal(r.commit, updated.commit);
    const heads = remoteHeads(bare);
    assert.equal(heads.has('refs/heads/alpha'), false, 'remote branch gone');
    assert.ok(heads.has(`refs/tags/${r.tag}`), 'tag pushed');
    assert.equal(git(bare, 'rev-parse', `${r.tag}^{commit}`), updated.commit, 'tag points at the old head');
    assert.equal(git(bare, 'for-each-ref', '--format=%(taggername)', `refs/tags/${r.tag}`), 'kindler bot');
    assert.equal(git(join(root, 'data', 'main', 'gitops'), 'branch', '--list', 'alpha'), '', 'local branch gone');
    assert.ok(heads.has('refs/heads/beta'), 'other branches untouched');
  });

  test('archiveAndDelete of a missing branch is {absent: true}', async () => {
    assert.deepEqual(await gitops.archiveAndDelete('alpha'), { absent: true });
    assert.deepEqual(await gitops.archiveAndDelete('never-existed'), { absent: true });
  });

  test('a second instance on the existing clone works (fetch path), still cwd-independent', async () => {
    process.chdir(root);
    try {
      const other = new Gitops(config(bare, 'main'), () => {});
      const s = await other.status(['beta', 'alpha']);
      assert.equal(s.get('beta'), remoteHeads(bare).get('refs/heads/beta'));
      assert.equal(s.get('alpha'), null);
    } finally {
      process.chdir(elsewhere);
    }
  });

  test('every git operation was logged as one line', () => {
    assert.ok(lines.length > 10);
    for (const l of lines) assert.doesNotMatch(l, /\n/);
    assert.ok(lines.some((l) => /^gitops createBranch: git push .*refs\/heads\/alpha.*\(ok, \d+ ms\)$/.test(l)));
    assert.ok(lines.some((l) => /^gitops archiveAndDelete: git ls-remote /.test(l)));
  });
});

describe('failures', () => {
  test("a push rejected by a pre-receive hook rejects with git's whole message", async () => {
    const bare = makeRemote(root, 'hooked');
    writeFileSync(join(bare, 'hooks', 'pre-receive'), '#!/bin/sh\necho "denied by policy" >&2; exit 1\n');
    chmodSync(join(bare, 'hooks', 'pre-receive'), 0o755);
    const lines: string[] = [];
    const g = new Gitops(config(bare, 'hooked'), (l) => lines.push(l));
    await assert.rejects(g.createBranch(cluster('delta'), 'dev.example.test'), (e: unknown) => {
      assert.ok(e instanceof KindlerError);
      assert.match(e.message, /^gitops createBranch: git push /);
      assert.match(e.message, /denied by policy/);
      assert.match(e.message, /pre-receive hook declined/);
      return true;
    });
    assert.equal(remoteHeads(bare).has('refs/heads/delta'), false);
    assert.ok(
      lines.some((l) => /^gitops createBranch: git push .*\(failed, \d+ ms\): .*denied by policy/.test(l)),
      'the log line shows the cause',
    );
    // once the policy is lifted the same call succeeds
    rmSync(join(bare, 'hooks', 'pre-receive'));
    const ok = await g.createBranch(cluster('delta'), 'dev.example.test');
    assert.equal(remoteHeads(bare).get('refs/heads/delta'), ok.commit);
  });

  test('a missing base branch and a missing remote fail with the operation named', async () => {
    const bare = makeRemote(root, 'nobase');
    const g = new Gitops(config(bare, 'nobase', { baseBranch: 'trunk' }), () => {});
    await assert.rejects(g.createBranch(cluster('eps'), 'dev.example.test'), /gitops createBranch: base branch "trunk" does not exist/);
    const missing = new Gitops(config(join(root, 'no-such.git'), 'missing'), () => {});
    await assert.rejects(
      missing.ensureClone(),
      (e: unknown) =>
        e instanceof Error && /^gitops ensureClone: git clone /.test(e.message) && /does not exist|not appear to be a git repository/.test(e.message),
    );
  });

  test('a non-empty workDir that is not a clone is refused (even inside another repository)', async () => {
    const bare = makeRemote(root, 'nested');
    const host = join(root, 'host-repo');
    git(root, 'init', '--quiet', '--initial-branch=main', host);
    const workDir = join(host, 'gitops');
    mkdirSync(workDir);
    writeFileSync(join(workDir, 'stray.txt'), 'x');
    const g = new Gitops(config(bare, 'nested', { workDir }), () => {});
    await assert.rejects(g.ensureClone(), /gitops ensureClone: workDir .* is not empty and is not a git clone/);
    // an empty directory inside another repository becomes its own clone
    rmSync(join(workDir, 'stray.txt'));
    await g.ensureClone();
    assert.equal(git(workDir, 'rev-parse', '--show-toplevel'), workDir);
  });

  test('bad names, domains and templates are refused before git runs', async () => {
    const bare = makeRemote(root, 'bad');
    const tpl = join(root, 'bad-template');
    mkdirSync(tpl);
    symlinkSync('/etc/passwd', join(tpl, 'link-{{name}}'));
    const g = new Gitops(config(bare, 'bad'), () => {});
    await assert.rejects(g.createBranch(cluster('-x'), 'dev.example.test'), /not a cluster name/);
    await assert.rejects(g.createBranch(cluster('main'), 'dev.example.test'), /base branch/);
    await assert.rejects(g.createBranch(cluster('ok'), 'bad domain/..'), /not a domain name/);
    await assert.rejects(g.archiveAndDelete('../main'), /not a cluster name/);
    const t = new Gitops(config(bare, 'bad', { templateDir: join(root, 'missing-template') }), () => {});
    await assert.rejects(t.createBranch(cluster('zeta'), 'dev.example.test'), /template directory .* cannot be read/);
    const s = new Gitops(config(bare, 'bad', { templateDir: tpl }), () => {});
    await assert.rejects(s.createBranch(cluster('zeta'), 'dev.example.test'), /symlinks are not supported/);
    assert.equal(remoteHeads(bare).has('refs/heads/zeta'), false);
  });
});

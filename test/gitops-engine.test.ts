/**
 * The GitOps branch as a task step, against real git with a bare repository as the remote.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeWorld, startEngine, verb } from './helpers.js';

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' }).trim();

test('create pushes a verified branch, delete archives it, a rejected push fails the step and sync finishes it', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'kindler-gitops-e2e-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const bare = join(base, 'remote.git');
  git(base, 'init', '--bare', '--initial-branch=main', bare);
  const seed = join(base, 'seed');
  git(base, 'init', '--initial-branch=main', seed);
  writeFileSync(join(seed, 'README.md'), 'gitops\n');
  git(seed, 'add', '.');
  git(seed, 'commit', '-m', 'init');
  git(seed, 'push', bare, 'main');
  const template = join(base, 'template');
  mkdirSync(join(template, 'apps'), { recursive: true });
  writeFileSync(join(template, 'apps', '{{name}}-values.yaml'), 'host: {{domain}}\nprovider: {{provider}}\n');

  const w = makeWorld({
    routes: { enabled: false, baseDomain: 'example.test' },
    gitops: { enabled: true, repository: bare, baseBranch: 'main', templateDir: template, author: { name: 'kindler bot', email: 'bot@example.test' } },
  });
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });

  const r = await verb(engine, ['create', 'gitty', '--wait', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const task = JSON.parse(r.out).task;
  assert.equal(task.steps.find((s: { key: string }) => s.key === 'git-branch').state, 'succeeded');
  const head = git(bare, 'rev-parse', 'refs/heads/gitty');
  const files = git(bare, 'ls-tree', '-r', '--name-only', head).split('\n');
  assert.ok(files.includes('clusters/gitty/cluster.json'), files.join(','));
  assert.ok(files.includes('apps/gitty-values.yaml'));
  assert.equal(JSON.parse(git(bare, 'show', `${head}:clusters/gitty/cluster.json`)).name, 'gitty');
  assert.equal(git(bare, 'log', '-1', '--format=%an', head), 'kindler bot');

  const d = await verb(engine, ['delete', 'gitty', '--wait', '--json']);
  assert.equal(d.code, 0, d.err);
  assert.throws(() => git(bare, 'rev-parse', '--verify', 'refs/heads/gitty'));
  const tags = git(bare, 'tag', '--list', 'archive/gitty-*');
  assert.match(tags, /^archive\/gitty-\d{8}T\d{6}Z$/);
  assert.equal(git(bare, 'rev-parse', `${tags}^{commit}`), head);

  // The remote refuses pushes: the git step fails with git's message; the cluster stays and says why.
  const hook = join(bare, 'hooks', 'pre-receive');
  writeFileSync(hook, '#!/bin/sh\necho "denied by policy" >&2\nexit 1\n');
  chmodSync(hook, 0o755);
  const bad = await verb(engine, ['create', 'gated', '--wait', '--json']);
  assert.equal(bad.code, 1);
  const bt = JSON.parse(bad.out).task;
  assert.match(bt.error.reason, /^git-branch step failed: .*denied by policy/s);
  const c = engine.getCluster('gated')!;
  assert.equal(c.actual, 'running');
  assert.equal(c.steps!.find((s) => s.key === 'git-branch')!.state, 'failed');
  assert.match(c.lastError!, /denied by policy/);

  // Once the remote accepts again, sync finishes the job.
  rmSync(hook);
  const s = await verb(engine, ['sync', 'gated', '--wait', '--json']);
  assert.equal(s.code, 0, s.out + s.err);
  assert.ok(git(bare, 'rev-parse', 'refs/heads/gated'));
  assert.equal(engine.getCluster('gated')!.lastError, undefined);
  // show --json carries each step's result.
  const show = JSON.parse((await verb(engine, ['show', 'gated', '--json'])).out);
  assert.equal(show.cluster.steps.find((x: { key: string }) => x.key === 'git-branch').state, 'succeeded');
});

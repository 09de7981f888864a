/**
 * Issue 14, section 2 ("The clusters themselves are reachable"): per-cluster choices (create --no-route,
 * --register) are validated, stored, shown and reused on a retry; hooks get KINDLER_REGISTER and an API
 * server address containers can reach (KINDLER_API_SERVER_INTERNAL, the node's address on the cluster's
 * docker network) beside the host-side one. The engine in-process, against the fake provider tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAKE_BIN, verb, withEngine, type World } from './helpers.js';

/** A hooks dir with one post-create and one post-delete hook that write the variables they got into `out`. */
function recordingHooks(dir: string): { hooksDir: string; out: string } {
  const hooksDir = join(dir, 'hooks');
  const out = join(dir, 'hook.env');
  for (const phase of ['post-create', 'post-delete']) {
    mkdirSync(join(hooksDir, `${phase}.d`), { recursive: true });
    const file = join(hooksDir, `${phase}.d`, '10-record');
    writeFileSync(
      file,
      `#!/usr/bin/env bash\nset -euo pipefail\nprintf '%s register=%s api=%s internal=%s\\n' "$KINDLER_HOOK_PHASE" "$KINDLER_REGISTER" "$KINDLER_API_SERVER" "$KINDLER_API_SERVER_INTERNAL" >> ${out}\n`,
    );
    chmodSync(file, 0o755);
  }
  return { hooksDir, out };
}

/** The address docker reports for a container (the fake docker, queried the way create_env.sh does). */
function dockerAddress(w: World, container: string): string {
  return execFileSync(join(FAKE_BIN, 'docker'), ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container], {
    env: w.env,
    encoding: 'utf8',
  }).trim();
}

test('create --register and --no-route: stored, shown in show and list, passed to hooks with both API server addresses', async (t) => {
  const base = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'kindler-reach-'));
  t.after(async () => (await import('node:fs')).rmSync(base, { recursive: true, force: true }));
  const { hooksDir, out } = recordingHooks(base);
  const { w, engine } = await withEngine(t, { hooksDir });

  const r = await verb(engine, ['create', 'kreg', '--provider', 'kind', '--register', 'portainer,argocd', '--no-route', '--wait', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const c = engine.getCluster('kreg')!;
  assert.deepEqual(c.options, { route: false, register: ['portainer', 'argocd'] });
  const ip = dockerAddress(w, 'kreg-control-plane');
  assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
  assert.equal(c.nodeAddress, ip);
  assert.equal(readFileSync(out, 'utf8'), `post-create register=portainer,argocd api=https://127.0.0.1:${c.apiPort} internal=https://${ip}:6443\n`);

  const show = await verb(engine, ['show', 'kreg', '--json']);
  assert.deepEqual(JSON.parse(show.out).cluster.options, { route: false, register: ['portainer', 'argocd'] });
  const list = await verb(engine, ['list', '--json']);
  assert.deepEqual(JSON.parse(list.out).clusters.find((x: { name: string }) => x.name === 'kreg').options, { route: false, register: ['portainer', 'argocd'] });
  const text = (await verb(engine, ['show', 'kreg'])).out;
  assert.match(text, /^route +off \(--no-route\)$/m);
  assert.match(text, /^register +portainer,argocd$/m);

  // A cluster that asked for nothing: hooks get an empty list, and the default route choice.
  const plain = await verb(engine, ['create', 'plain', '--wait']);
  assert.equal(plain.code, 0, plain.out + plain.err);
  assert.deepEqual(engine.getCluster('plain')!.options, { route: true, register: [] });
  assert.match(readFileSync(out, 'utf8'), /^post-create register= api=https:\/\/127\.0\.0\.1:\d+ internal=https:\/\/\d+\.\d+\.\d+\.\d+:6443$/m);

  // The delete hooks see the record's choices too (a hook removes only what the cluster asked for).
  assert.equal((await verb(engine, ['delete', 'kreg', '--wait'])).code, 0);
  assert.match(readFileSync(out, 'utf8'), /^post-delete register=portainer,argocd /m);
});

test('a bad --register is one line naming the field and the rule, exit 2, and changes nothing', async (t) => {
  const { engine } = await withEngine(t);
  for (const [value, extra] of [
    ['portainer,gitlab', ''],
    ['argocd,argocd', '; argocd is given twice'],
    ['', ''],
  ] as const) {
    const r = await verb(engine, ['create', 'bad', '--register', value]);
    assert.equal(r.code, 2, r.err);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.ok(r.err.startsWith(`error: register: must be a comma-separated list of portainer, argocd (each at most once), or none${extra} (got `), r.err);
  }
  assert.equal((await verb(engine, ['create', 'bad', '--no-route=maybe'])).code, 2);
  assert.equal(engine.getCluster('bad'), undefined);
  assert.deepEqual(engine.listTasks(), []);
});

test('a retry reuses the recorded --no-route and --register, says so, and honours them when given again', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('kind.create-cluster', 'fail 1 boom');
  const first = await verb(engine, ['create', 'again', '--provider', 'kind', '--no-route', '--register', 'argocd', '--wait']);
  assert.equal(first.code, 1, first.err);
  assert.deepEqual(engine.getCluster('again')!.options, { route: false, register: ['argocd'] });
  w.clearRule('kind.create-cluster');

  const retry = await verb(engine, ['create', 'again', '--wait', '--json']);
  assert.equal(retry.code, 0, retry.out + retry.err);
  const task = JSON.parse(retry.out).task;
  assert.match(task.params.retry, /; route off \(--no-route\); register argocd$/);
  assert.deepEqual(engine.getCluster('again')!.options, { route: false, register: ['argocd'] });
  assert.equal(engine.getCluster('again')!.actual, 'running');

  // Given on a retry: honoured, and the line names them.
  assert.equal((await verb(engine, ['delete', 'again', '--wait'])).code, 0);
  w.rule('kind.create-cluster', 'fail 1 boom');
  assert.equal((await verb(engine, ['create', 'again2', '--provider', 'kind', '--no-route', '--wait'])).code, 1);
  w.clearRule('kind.create-cluster');
  const changed = await verb(engine, ['create', 'again2', '--no-route=false', '--register', 'none', '--wait', '--json']);
  assert.equal(changed.code, 0, changed.out + changed.err);
  assert.match(JSON.parse(changed.out).task.params.retry, /; route on; register none \(given now: route\)$/);
  assert.deepEqual(engine.getCluster('again2')!.options, { route: true, register: [] });
});

/**
 * The shipped registration hooks, run for real with stand-in `argocd` and `curl` that record their argv:
 * the documented commands are called, and no secret ever appears in argv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, makeWorld, ROOT, startDaemon } from './helpers.js';
import { runScript } from '../src/os/runner.js';
import { childEnv, setPassEnv } from '../src/core/childenv.js';

const AVAILABLE = join(ROOT, 'scripts', 'hooks.d', 'available');

function world() {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-hooks-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const calls = join(dir, 'calls');
  const stub = (name: string, body = '') => {
    writeFileSync(join(bin, name), `#!/usr/bin/env bash\nprintf '%s\\n' "${name} $*" >> ${calls}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  return { dir, bin, calls, stub, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const facts = (phase: string) => ({
  KINDLER_HOOK_PHASE: phase,
  KINDLER_TASK_ID: 't-7',
  KINDLER_CLUSTER_NAME: 'dev',
  KINDLER_CLUSTER_PROVIDER: 'k3d',
  KINDLER_CLUSTER_KUBECONFIG: '/var/lib/kindler/kubeconfig/dev.yaml',
  KINDLER_CLUSTER_KUBE_CONTEXT: 'k3d-dev',
  KINDLER_CLUSTER_NODE_ADDRESS: '172.18.0.3',
  KINDLER_API_SERVER: 'https://127.0.0.1:16443',
  KINDLER_API_SERVER_INTERNAL: 'https://172.18.0.3:6443',
  KINDLER_REGISTER: 'portainer,argocd',
});

test('argocd-register: cluster add at the internal API address on create, cluster rm on delete; a failing argocd fails the hook', (t) => {
  const w = world();
  t.after(w.cleanup);
  const kubeconfig = join(w.dir, 'dev.yaml');
  writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
  // argocd records the mode of the kubeconfig it is given and whether it exists after the hook (below).
  w.stub(
    'argocd',
    `prev=""; for a in "$@"; do if [[ $prev == --kubeconfig ]]; then stat -c '%a' "$a" >> ${w.calls}.mode; echo "$a" >> ${w.calls}.kc; fi; prev=$a; done`,
  );
  // kubectl: the context's cluster for `config view`, silence for set-cluster.
  w.stub('kubectl', 'case "$*" in *"config view"*) echo k3d-dev;; esac');
  const env = { PATH: `${w.bin}:${process.env.PATH}` };
  execFileSync(join(AVAILABLE, 'argocd-register'), { env: { ...env, ...facts('post-create'), KINDLER_CLUSTER_KUBECONFIG: kubeconfig } });
  execFileSync(join(AVAILABLE, 'argocd-register'), { env: { ...env, ...facts('post-delete') } });
  const tmpKc = readFileSync(`${w.calls}.kc`, 'utf8').trim();
  assert.notEqual(tmpKc, kubeconfig, "Argo CD gets a copy, never kindler's own kubeconfig");
  assert.equal(readFileSync(`${w.calls}.mode`, 'utf8').trim(), '600');
  assert.ok(!existsSync(tmpKc), 'the copy is removed');
  assert.deepEqual(readFileSync(w.calls, 'utf8').trim().split('\n'), [
    `kubectl --kubeconfig ${tmpKc} config view -o jsonpath={.contexts[?(@.name=="k3d-dev")].context.cluster}`,
    `kubectl --kubeconfig ${tmpKc} config set-cluster k3d-dev --server=https://172.18.0.3:6443`,
    `argocd cluster add k3d-dev --kubeconfig ${tmpKc} --name dev --upsert --yes`,
    'argocd cluster rm dev --yes',
  ]);
  assert.equal(readFileSync(kubeconfig, 'utf8'), 'apiVersion: v1\nkind: Config\n', "kindler's kubeconfig is untouched");
  w.stub('argocd', 'echo "rpc error: Unauthenticated" >&2; exit 20');
  const r = spawnSync(join(AVAILABLE, 'argocd-register'), {
    env: { ...env, ...facts('post-create'), KINDLER_CLUSTER_KUBECONFIG: kubeconfig },
    encoding: 'utf8',
  });
  assert.equal(r.status, 20);
  assert.match(r.stderr, /Unauthenticated/);
  // No internal address yet: refused with the reason, argocd never called.
  const none = spawnSync(join(AVAILABLE, 'argocd-register'), {
    env: { ...env, ...facts('post-create'), KINDLER_CLUSTER_KUBECONFIG: kubeconfig, KINDLER_API_SERVER_INTERNAL: '' },
    encoding: 'utf8',
  });
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /no node address yet/);
});

test('the shipped hooks do nothing for a cluster that did not ask to be registered', (t) => {
  const w = world();
  t.after(w.cleanup);
  w.stub('argocd');
  w.stub('curl');
  w.stub('kubectl');
  const env = { PATH: `${w.bin}:${process.env.PATH}`, PORTAINER_URL: 'https://portainer.example.test:9443', PORTAINER_API_KEY_FILE: join(w.dir, 'missing') };
  for (const [hook, register] of [
    ['argocd-register', 'portainer'],
    ['portainer-register', 'argocd'],
    ['argocd-register', ''],
    ['portainer-register', ''],
  ] as const) {
    for (const phase of ['post-create', 'post-delete']) {
      const r = spawnSync(join(AVAILABLE, hook), { env: { ...env, ...facts(phase), KINDLER_REGISTER: register }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /did not ask to be registered/);
    }
  }
  assert.ok(!existsSync(w.calls), 'no tool was called');
});

test('portainer-register: the API calls are made and the token never appears in argv', (t) => {
  const w = world();
  t.after(w.cleanup);
  const token = join(w.dir, 'token');
  writeFileSync(token, 'ptr_SECRET_TOKEN\n');
  // curl stand-in: records argv, returns an endpoint list for GET, accepts -H @file.
  w.stub(
    'curl',
    `for a in "$@"; do case "$a" in @*) cat "\${a#@}" >> ${w.calls}.headers;; esac; done\ncase "$*" in *" -G "*) echo '[{"Id":4,"Name":"dev"},{"Id":5,"Name":"other"}]';; esac`,
  );
  const hasJq = spawnSync('sh', ['-c', 'command -v jq']).status === 0;
  if (!hasJq)
    w.stub(
      'jq',
      `exec ${process.execPath} -e 'const a=process.argv; let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const e of JSON.parse(s)) if(e.Name===a[a.indexOf("--arg")+2]) console.log(e.Id)})' -- "$@"`,
    );
  const env = { PATH: `${w.bin}:${process.env.PATH}`, PORTAINER_URL: 'https://portainer.example.test:9443', PORTAINER_API_KEY_FILE: token };
  execFileSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-create') } });
  execFileSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-delete') } });
  const calls = readFileSync(w.calls, 'utf8');
  assert.match(
    calls,
    /-X POST https:\/\/portainer\.example\.test:9443\/api\/endpoints -F Name=dev -F EndpointCreationType=2 -F URL=tcp:\/\/172\.18\.0\.3:30778/,
  );
  assert.match(calls, /-X DELETE https:\/\/portainer\.example\.test:9443\/api\/endpoints\/4\n/);
  assert.doesNotMatch(calls, /api\/endpoints\/5/);
  assert.doesNotMatch(calls, /SECRET/, 'the token is never in argv');
  assert.match(readFileSync(`${w.calls}.headers`, 'utf8'), /^X-API-Key: ptr_SECRET_TOKEN$/m);
});

/** `env` output as a map. */
function envOf(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
  );
}

test('the daemon gives hooks and route commands only allow-listed variables: its secrets stay in the daemon', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'kindler-env-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const hooksDir = join(base, 'hooks');
  mkdirSync(join(hooksDir, 'post-create.d'), { recursive: true });
  mkdirSync(join(base, 'haproxy'));
  writeFileSync(join(hooksDir, 'post-create.d', '10-env'), `#!/bin/sh\nenv > ${join(base, 'hook.env')}\n`);
  chmodSync(join(hooksDir, 'post-create.d', '10-env'), 0o755);
  const w = makeWorld({
    hooksDir,
    passEnv: ['KINDLER_FAKE_*', 'PORTAINER_URL'],
    routes: {
      enabled: true,
      baseDomain: 'example.test',
      listen: { http: { address: '127.0.0.1', port: 18080 } },
      configFile: join(base, 'haproxy', 'kindler.cfg'),
      validateCommand: ['sh', '-c', `env > ${join(base, 'validate.env')}`, '{file}'],
      reloadCommand: ['sh', '-c', `env > ${join(base, 'reload.env')}`],
      backend: 'host-port',
    },
  });
  t.after(() => w.dispose());
  // What an operator might have in the service's environment: a token, the config path, a proxy, a named pass-through.
  w.env.KINDLER_TEST_SECRET = 'hunter2-do-not-pass';
  w.env.SOME_API_TOKEN = 'tok-do-not-pass';
  w.env.https_proxy = 'http://proxy.example.test:3128';
  w.env.PORTAINER_URL = 'https://portainer.example.test';
  w.env.LC_TIME = 'C.UTF-8';
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const r = await cli(w, ['create', 'envy', '--wait']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const f of ['hook.env', 'validate.env', 'reload.env']) {
    const env = envOf(readFileSync(join(base, f), 'utf8'));
    const names = [...env.keys()];
    for (const secret of ['KINDLER_TEST_SECRET', 'SOME_API_TOKEN', 'KINDLER_CONFIG'])
      assert.ok(!env.has(secret), `${f}: ${secret} must not be passed (got ${names.join(' ')})`);
    assert.doesNotMatch(readFileSync(join(base, f), 'utf8'), /do-not-pass/, f);
    assert.equal(env.get('PATH'), w.env.PATH, `${f}: PATH is passed`);
    assert.equal(env.get('HOME'), w.env.HOME, `${f}: HOME is passed`);
    assert.equal(env.get('https_proxy'), 'http://proxy.example.test:3128', `${f}: proxies are passed`);
    assert.equal(env.get('LC_TIME'), 'C.UTF-8', `${f}: LC_* is passed`);
    assert.equal(env.get('PORTAINER_URL'), 'https://portainer.example.test', `${f}: a passEnv name is passed`);
    assert.equal(env.get('KINDLER_FAKE_DIR'), w.fakeDir, `${f}: a passEnv prefix is passed`);
  }
  const hook = envOf(readFileSync(join(base, 'hook.env'), 'utf8'));
  assert.equal(hook.get('KINDLER_CLUSTER_NAME'), 'envy', 'the facts kindler sets for a hook are there');
});

test('a script gets the allow-listed environment plus what kindler sets, nothing else', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-env-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  process.env.KINDLER_TEST_SECRET = 'hunter2-do-not-pass';
  t.after(() => {
    delete process.env.KINDLER_TEST_SECRET;
    setPassEnv([]);
  });
  setPassEnv([]);
  writeFileSync(join(dir, 'env.sh'), 'env\n');
  const lines: string[] = [];
  const run = runScript({
    script: join(dir, 'env.sh'),
    args: [],
    cwd: dir,
    env: { KINDLER_TASK_ID: 't-9' },
    timeoutMs: 20_000,
    graceMs: 1000,
    onLine: (l) => lines.push(l),
  });
  const r = await run.done;
  assert.equal(r.exitCode, 0);
  const env = envOf(lines.join('\n'));
  assert.ok(!env.has('KINDLER_TEST_SECRET'), [...env.keys()].join(' '));
  assert.equal(env.get('KINDLER_TASK_ID'), 't-9');
  assert.equal(env.get('PATH'), process.env.PATH);
  assert.deepEqual(childEnv({}, { PATH: '/bin', SECRET: 'x', LC_ALL: 'C', MY_A: '1', MY: '2' }), { PATH: '/bin', LC_ALL: 'C' });
  setPassEnv(['MY_*']);
  assert.deepEqual(childEnv({ X: 'y' }, { PATH: '/bin', SECRET: 'x', MY_A: '1', MY: '2' }), { PATH: '/bin', MY_A: '1', X: 'y' });
});

test('portainer-register with PORTAINER_AGENT_MANIFEST: the agent is applied and waited for before Portainer is told about it', (t) => {
  const w = world();
  t.after(w.cleanup);
  const token = join(w.dir, 'token');
  writeFileSync(token, 'ptr_SECRET_TOKEN\n');
  const manifest = join(w.dir, 'portainer-agent.yaml');
  writeFileSync(manifest, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: portainer\n');
  w.stub('curl');
  w.stub('kubectl');
  const env = {
    PATH: `${w.bin}:${process.env.PATH}`,
    PORTAINER_URL: 'https://portainer.example.test:9443',
    PORTAINER_API_KEY_FILE: token,
    PORTAINER_AGENT_MANIFEST: manifest,
  };
  execFileSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-create') } });
  const calls = readFileSync(w.calls, 'utf8').trim().split('\n');
  assert.deepEqual(calls.slice(0, 2), [
    `kubectl --kubeconfig /var/lib/kindler/kubeconfig/dev.yaml --context k3d-dev apply -f ${manifest}`,
    'kubectl --kubeconfig /var/lib/kindler/kubeconfig/dev.yaml --context k3d-dev -n portainer wait --for=condition=available deployment/portainer-agent --timeout=180s',
  ]);
  assert.match(calls[2]!, /^curl .*-X POST https:\/\/portainer\.example\.test:9443\/api\/endpoints /);
  // An agent that never becomes available: the hook fails, Portainer is not told.
  w.stub('kubectl', 'case "$*" in *" wait "*) echo "error: timed out waiting for the condition on deployments/portainer-agent" >&2; exit 1;; esac');
  rmSync(w.calls);
  const r = spawnSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-create') }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /timed out waiting for the condition on deployments\/portainer-agent/);
  assert.doesNotMatch(readFileSync(w.calls, 'utf8'), /^curl /m);
});

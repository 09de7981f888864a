/**
 * The shipped registration hooks, run for real with stand-in `argocd` and `curl` that record their argv:
 * the documented commands are called, and no secret ever appears in argv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

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
});

test('argocd-register: cluster add on create, cluster rm on delete; a failing argocd fails the hook', (t) => {
  const w = world();
  t.after(w.cleanup);
  w.stub('argocd');
  const env = { PATH: `${w.bin}:${process.env.PATH}` };
  execFileSync(join(AVAILABLE, 'argocd-register'), { env: { ...env, ...facts('post-create') } });
  execFileSync(join(AVAILABLE, 'argocd-register'), { env: { ...env, ...facts('post-delete') } });
  assert.deepEqual(readFileSync(w.calls, 'utf8').trim().split('\n'), [
    'argocd cluster add k3d-dev --kubeconfig /var/lib/kindler/kubeconfig/dev.yaml --name dev --upsert --yes',
    'argocd cluster rm dev --yes',
  ]);
  w.stub('argocd', 'echo "rpc error: Unauthenticated" >&2; exit 20');
  const r = spawnSync(join(AVAILABLE, 'argocd-register'), { env: { ...env, ...facts('post-create') }, encoding: 'utf8' });
  assert.equal(r.status, 20);
  assert.match(r.stderr, /Unauthenticated/);
});

test('portainer-register: the API calls are made and the token never appears in argv', (t) => {
  const w = world();
  t.after(w.cleanup);
  const token = join(w.dir, 'token');
  writeFileSync(token, 'ptr_SECRET_TOKEN\n');
  // curl stand-in: records argv, returns an endpoint list for GET, accepts -H @file.
  w.stub('curl', `for a in "$@"; do case "$a" in @*) cat "\${a#@}" >> ${w.calls}.headers;; esac; done\ncase "$*" in *" -G "*) echo '[{"Id":4,"Name":"dev"},{"Id":5,"Name":"other"}]';; esac`);
  const hasJq = spawnSync('sh', ['-c', 'command -v jq']).status === 0;
  if (!hasJq) w.stub('jq', `exec ${process.execPath} -e 'const a=process.argv; let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const e of JSON.parse(s)) if(e.Name===a[a.indexOf("--arg")+2]) console.log(e.Id)})' -- "$@"`);
  const env = { PATH: `${w.bin}:${process.env.PATH}`, PORTAINER_URL: 'https://portainer.example.test:9443', PORTAINER_API_KEY_FILE: token };
  execFileSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-create') } });
  execFileSync(join(AVAILABLE, 'portainer-register'), { env: { ...env, ...facts('post-delete') } });
  const calls = readFileSync(w.calls, 'utf8');
  assert.match(calls, /-X POST https:\/\/portainer\.example\.test:9443\/api\/endpoints -F Name=dev -F EndpointCreationType=2 -F URL=tcp:\/\/172\.18\.0\.3:30778/);
  assert.match(calls, /-X DELETE https:\/\/portainer\.example\.test:9443\/api\/endpoints\/4\n/);
  assert.doesNotMatch(calls, /api\/endpoints\/5/);
  assert.doesNotMatch(calls, /SECRET/, 'the token is never in argv');
  assert.match(readFileSync(`${w.calls}.headers`, 'utf8'), /^X-API-Key: ptr_SECRET_TOKEN$/m);
});

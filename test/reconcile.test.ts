/**
 * Reconcile: drift between records and the provider (pure), the healing pass with a fake engine, and one
 * integration run with a real in-process engine against the fake provider tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Cluster, Task } from '../src/core/types.js';
import {
  analyseDrift,
  computeDrift,
  listProviderClusters,
  providerInventory,
  reconcilePass,
  type Drift,
  type PassActor,
  type ProviderCluster,
  type ReconcileDeps,
  type ReconcileEngine,
} from '../src/cron/reconcile.js';
import type { TtlEngine } from '../src/cron/lifecycle.js';
import { FAKE_BIN, makeWorld, scriptEnv, startEngine, verb } from './helpers.js';

const AT = '2026-01-01T00:00:00.000Z';

function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 0,
    httpPort: 18080,
    httpsPort: 18443,
    apiPort: 16443,
    owner: 'alice',
    createdAt: AT,
    desired: 'present',
    actual: 'running',
    kubeContext: `k3d-${name}`,
    kubeconfig: `/tmp/${name}.yaml`,
    updatedAt: AT,
    ...over,
  };
}

const prov = (name: string, state: ProviderCluster['state'] = 'running', over: Partial<ProviderCluster> = {}): ProviderCluster => ({
  name,
  provider: 'k3d',
  state,
  nodes: 1,
  running: state === 'running' ? 1 : 0,
  ...over,
});

const kinds = (d: Drift[]) => d.map((x) => `${x.kind}:${x.cluster}:${x.heal}`).sort();

// ---- computeDrift ---------------------------------------------------------------------------------

test('no drift when records and provider agree', () => {
  const d = computeDrift([cluster('a'), cluster('b', { desired: 'stopped', actual: 'stopped' })], [prov('a'), prov('b', 'stopped')]);
  assert.deepEqual(d, []);
});

test('stopped: desired present, provider stopped or degraded -> start', () => {
  const d = computeDrift([cluster('a'), cluster('b')], [prov('a', 'stopped'), prov('b', 'degraded', { nodes: 2, running: 1 })]);
  assert.deepEqual(kinds(d), ['stopped:a:start', 'stopped:b:start']);
  assert.match(d.find((x) => x.cluster === 'b')!.detail, /1 of 2 nodes running/);
});

test('stopped: leftovers of a failed create are reported, never started', () => {
  const d = computeDrift([cluster('half', { actual: 'failed' })], [prov('half', 'degraded', { nodes: 1, running: 0 })]);
  assert.deepEqual(kinds(d), ['stopped:half:report']);
  assert.match(d[0]!.detail, /kindler delete half/);
});

test('running: desired stopped, provider running -> stop', () => {
  const d = computeDrift([cluster('a', { desired: 'stopped', actual: 'stopped' })], [prov('a', 'running')]);
  assert.deepEqual(kinds(d), ['running:a:stop']);
  assert.match(d[0]!.detail, /desired stopped/);
});

test('missing: recorded present or stopped, provider absent -> report only', () => {
  const d = computeDrift([cluster('a'), cluster('b', { desired: 'stopped', actual: 'stopped' })], []);
  assert.deepEqual(kinds(d), ['missing:a:report', 'missing:b:report']);
  assert.match(d[0]!.detail, /not re-created automatically/);
});

test('missing matches on provider too: a kind cluster of the same name does not count', () => {
  const d = computeDrift([cluster('a')], [prov('a', 'running', { provider: 'kind' })]);
  assert.deepEqual(kinds(d), ['missing:a:report', 'unmanaged:a:report']);
});

test('unmanaged: the provider has it, no record -> reported with the adopt hint, never healed', () => {
  const d = computeDrift([], [prov('stray')]);
  assert.deepEqual(kinds(d), ['unmanaged:stray:report']);
  assert.match(d[0]!.detail, /kindler adopt stray/);
});

test('clusters with an active task, mid-create/delete, or meant absent are skipped and say so', () => {
  const r = analyseDrift(
    [cluster('busy'), cluster('making', { actual: 'creating' }), cluster('going', { desired: 'absent', actual: 'unknown' })],
    [prov('busy', 'stopped'), prov('going')],
    { active: new Set(['busy']) },
  );
  assert.deepEqual(r.drift, []);
  assert.deepEqual(r.skipped.map((s) => s.cluster).sort(), ['busy', 'going', 'making']);
  assert.match(r.skipped.find((s) => s.cluster === 'busy')!.reason, /active task/);
  assert.match(r.skipped.find((s) => s.cluster === 'going')!.reason, /kindler delete going/);
});

test('route: a missing route names its cluster; a whole-file mismatch goes through one routed cluster', () => {
  const cs = [cluster('a'), cluster('b')];
  const ps = [prov('a'), prov('b')];
  assert.deepEqual(kinds(computeDrift(cs, ps, { routesLiveMatches: false, routeMissing: new Set(['b']), routed: ['a', 'b'] })), ['route:b:sync']);
  assert.deepEqual(kinds(computeDrift(cs, ps, { routesLiveMatches: false, routed: ['a', 'b'] })), ['route:a:sync']);
  assert.deepEqual(kinds(computeDrift(cs, ps, { routesLiveMatches: true, routed: ['a', 'b'] })), []);
  const none = computeDrift([cluster('s', { desired: 'stopped', actual: 'stopped' })], [prov('s', 'stopped')], { routesLiveMatches: false, routed: [] });
  assert.deepEqual(kinds(none), ['route:(routes):report']);
});

test('branch: a running cluster without its GitOps branch -> sync; unknown branches are not judged', () => {
  const cs = [cluster('a'), cluster('b'), cluster('c', { desired: 'stopped', actual: 'stopped' })];
  const ps = [prov('a'), prov('b'), prov('c', 'stopped')];
  const d = computeDrift(cs, ps, {
    branches: new Map<string, string | null>([
      ['a', null],
      ['b', 'abc123'],
      ['c', null],
    ]),
  });
  assert.deepEqual(kinds(d), ['branch:a:sync']);
});

// ---- providerInventory -----------------------------------------------------------------------------

test('providerInventory checks the answer and refuses nonsense', async () => {
  assert.deepEqual(await providerInventory(async () => [prov('a')])(), [prov('a')]);
  await assert.rejects(
    providerInventory(async () => [{ name: 'a', provider: 'minikube', state: 'running', nodes: 1, running: 1 } as unknown as ProviderCluster]),
    /provider minikube/,
  );
  await assert.rejects(
    providerInventory(async () => [{ name: 'a', provider: 'k3d', state: 'absent', nodes: 0, running: 0 } as unknown as ProviderCluster]),
    /state absent/,
  );
});

// ---- reconcilePass with a fake engine --------------------------------------------------------------

interface Call {
  method: string;
  name: string;
  actor: PassActor;
}

function fakeEngine(clusters: Cluster[], opts: { fail?: Set<string>; active?: Task[] } = {}): ReconcileEngine & { calls: Call[] } {
  const calls: Call[] = [];
  let seq = 100;
  const act =
    (method: string) =>
    async (name: string, actor: PassActor): Promise<Task> => {
      calls.push({ method, name, actor });
      if (opts.fail?.has(name)) throw new Error(`boom for ${name}`);
      const c = clusters.find((x) => x.name === name)!;
      const id = `t-${++seq}`;
      c.lastTaskId = id;
      return {
        id,
        kind: method === 'startCluster' ? 'start' : method === 'stopCluster' ? 'stop' : 'sync',
        cluster: name,
        user: actor.user,
        state: 'queued',
        progress: 0,
        steps: [],
        createdAt: AT,
        notes: [],
        logLines: 0,
      };
    };
  return {
    calls,
    listClusters: () => clusters.map((c) => structuredClone(c)),
    getCluster: (n) => structuredClone(clusters.find((c) => c.name === n)),
    listTasks: () => opts.active ?? [],
    startCluster: act('startCluster'),
    stopCluster: act('stopCluster'),
    sync: act('sync'),
  };
}

function deps(engine: ReconcileEngine, provider: ProviderCluster[], extra: Partial<ReconcileDeps> = {}): ReconcileDeps & { lines: string[] } {
  const lines: string[] = [];
  return { engine, listProvider: async () => provider, now: () => new Date(AT), appendSummary: (l) => void lines.push(l), lines, ...extra };
}

test('reconcilePass heals stopped, running, route and branch through the engine, as kindler-reconcile', async () => {
  const e = fakeEngine([cluster('up'), cluster('down', { desired: 'stopped', actual: 'stopped' }), cluster('r'), cluster('g')]);
  const d = deps(e, [prov('up', 'stopped'), prov('down', 'running'), prov('r'), prov('g')], {
    routesStatus: async () => ({ liveMatches: false, routes: [{ cluster: 'r' }, { cluster: 'g' }], missing: ['r'] }),
    branchStatus: async (names) => new Map(names.map((n) => [n, n === 'g' ? null : 'abc'])),
  });
  const r = await reconcilePass(d, { dryRun: false });
  assert.deepEqual(e.calls.map((c) => `${c.method}:${c.name}`).sort(), ['startCluster:up', 'stopCluster:down', 'sync:g', 'sync:r']);
  assert.ok(e.calls.every((c) => c.actor.user === 'kindler-reconcile' && c.actor.source === 'scheduler' && c.actor.role === 'admin'));
  assert.deepEqual(r.healed.map((h) => `${h.kind}:${h.cluster}`).sort(), ['branch:g', 'route:r', 'running:down', 'stopped:up']);
  assert.ok(r.healed.every((h) => /^t-\d+$/.test(h.taskId)));
  assert.deepEqual(r.errors, []);
  assert.equal(r.at, AT);
  // One summary line, the whole result as JSON.
  assert.equal(d.lines.length, 1);
  assert.deepEqual(JSON.parse(d.lines[0]!), JSON.parse(JSON.stringify(r)));
});

test('two drifts on one cluster that heal the same way share one task', async () => {
  const e = fakeEngine([cluster('a')]);
  const r = await reconcilePass(
    deps(e, [prov('a')], {
      routesStatus: async () => ({ liveMatches: false, routes: [{ cluster: 'a' }], missing: ['a'] }),
      branchStatus: async () => new Map([['a', null]]),
    }),
    { dryRun: false },
  );
  assert.equal(e.calls.length, 1);
  assert.deepEqual(r.healed.map((h) => h.kind).sort(), ['branch', 'route']);
  assert.equal(new Set(r.healed.map((h) => h.taskId)).size, 1);
});

test('a dry run reports and heals nothing', async () => {
  const e = fakeEngine([cluster('up'), cluster('down', { desired: 'stopped', actual: 'stopped' })]);
  const d = deps(e, [prov('up', 'stopped'), prov('down', 'running')]);
  const r = await reconcilePass(d, { dryRun: true });
  assert.equal(e.calls.length, 0);
  assert.deepEqual(kinds(r.drift), ['running:down:stop', 'stopped:up:start']);
  assert.deepEqual(r.healed, []);
  assert.equal(JSON.parse(d.lines[0]!).dryRun, true);
});

test("one cluster's failing heal does not stop the others", async () => {
  const e = fakeEngine([cluster('a'), cluster('b'), cluster('c')], { fail: new Set(['b']) });
  const d = deps(e, [prov('a', 'stopped'), prov('b', 'stopped'), prov('c', 'stopped')]);
  const r = await reconcilePass(d, { dryRun: false });
  assert.deepEqual(
    e.calls.map((c) => c.name),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(
    r.healed.map((h) => h.cluster),
    ['a', 'c'],
  );
  assert.deepEqual(r.errors, [{ cluster: 'b', error: 'boom for b' }]);
  assert.deepEqual(JSON.parse(d.lines[0]!).errors, [{ cluster: 'b', error: 'boom for b' }]);
});

test('missing is only reported and unmanaged never touched, even when healing is asked for', async () => {
  const e = fakeEngine([cluster('gone')]);
  const d = deps(e, [prov('stray')]);
  const r = await reconcilePass(d, { dryRun: false, heal: { missing: true, unmanaged: true } });
  assert.equal(e.calls.length, 0);
  assert.deepEqual(kinds(r.drift), ['missing:gone:report', 'unmanaged:stray:report']);
  assert.deepEqual(r.healed, []);
});

test('a kind switched off is reported but not healed', async () => {
  const e = fakeEngine([cluster('a')]);
  const r = await reconcilePass(deps(e, [prov('a', 'stopped')]), { dryRun: false, heal: { stopped: false } });
  assert.equal(e.calls.length, 0);
  assert.deepEqual(kinds(r.drift), ['stopped:a:start']);
});

test('a cluster with an active task is skipped and not healed', async () => {
  const busy: Task = { id: 't-9', kind: 'stop', cluster: 'a', user: 'alice', state: 'running', progress: 10, steps: [], createdAt: AT, notes: [], logLines: 0 };
  const e = fakeEngine([cluster('a')], { active: [busy] });
  const r = await reconcilePass(deps(e, [prov('a', 'stopped')]), { dryRun: false });
  assert.equal(e.calls.length, 0);
  assert.deepEqual(r.drift, []);
  assert.deepEqual(
    r.skipped.map((s) => s.cluster),
    ['a'],
  );
});

test('a cluster that changed during the pass is left for the next pass', async () => {
  const cs = [cluster('a')];
  const e = fakeEngine(cs);
  const r = await reconcilePass(
    deps(e, [], {
      listProvider: async () => {
        cs[0]!.lastTaskId = 't-55'; // a user's task started while docker was being asked
        return [prov('a', 'stopped')];
      },
    }),
    { dryRun: false },
  );
  assert.equal(e.calls.length, 0);
  assert.match(r.skipped.find((s) => s.cluster === 'a')!.reason, /changed while the pass ran/);
});

test('a provider that cannot be asked gives an error, never "everything is missing"', async () => {
  const e = fakeEngine([cluster('a'), cluster('b')]);
  const d = deps(e, [], {
    listProvider: async () => {
      throw new Error('Cannot connect to the Docker daemon');
    },
  });
  const r = await reconcilePass(d, { dryRun: false });
  assert.deepEqual(r.drift, []);
  assert.equal(e.calls.length, 0);
  assert.deepEqual(r.errors, [{ cluster: '(provider)', error: 'Cannot connect to the Docker daemon' }]);
  assert.equal(d.lines.length, 1);
});

test('a failing routes or gitops check is recorded and the rest of the pass goes on', async () => {
  const e = fakeEngine([cluster('a')]);
  const r = await reconcilePass(
    deps(e, [prov('a', 'stopped')], {
      routesStatus: async () => {
        throw new Error('cannot read haproxy.cfg');
      },
      branchStatus: async () => {
        throw new Error('ls-remote failed');
      },
    }),
    { dryRun: false },
  );
  assert.deepEqual(
    r.healed.map((h) => h.cluster),
    ['a'],
  );
  assert.deepEqual(r.errors.map((x) => x.cluster).sort(), ['(gitops)', '(routes)']);
});

test('a summary writer that fails does not throw out of the pass', async () => {
  const e = fakeEngine([cluster('a')]);
  const r = await reconcilePass(
    deps(e, [prov('a')], {
      appendSummary: () => {
        throw new Error('disk full');
      },
    }),
    { dryRun: true },
  );
  assert.deepEqual(r.errors, [{ cluster: '(summary)', error: 'disk full' }]);
});

// ---- with the real engine and the fake provider tools ----------------------------------------------

test('integration: stopped behind our back is started, missing only reported, stray left alone', async (t) => {
  const w = makeWorld();
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  for (const n of ['alpha', 'beta']) {
    const r = await verb(engine, ['create', n, '--wait', '--json']);
    assert.equal(r.code, 0, r.out + r.err);
  }
  const tool = (bin: string, args: string[]) => execFileSync(join(FAKE_BIN, bin), args, { env: w.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // Behind kindler's back: stop alpha's containers, delete beta, make a cluster kindler never heard of.
  for (const c of w.containers('k3d-alpha-')) tool('docker', ['stop', c]);
  tool('k3d', ['cluster', 'delete', 'beta']);
  tool('k3d', ['cluster', 'create', 'stray', '--kubeconfig-update-default=false', '--kubeconfig-switch-context=false']);

  // The real Engine fits both injected views (checked by the typecheck).
  const views: [ReconcileEngine, TtlEngine] = [engine, engine];
  assert.equal(views.length, 2);
  const callsBefore = w.calls().length;
  const lines: string[] = [];
  const d: ReconcileDeps = {
    engine,
    listProvider: () => listProviderClusters(w.cfg, scriptEnv(w)),
    appendSummary: (l) => void lines.push(l),
  };

  const dry = await reconcilePass(d, { dryRun: true });
  assert.deepEqual(kinds(dry.drift), ['missing:beta:report', 'stopped:alpha:start', 'unmanaged:stray:report']);
  assert.deepEqual(dry.healed, []);
  assert.deepEqual(dry.errors, []);
  assert.equal(engine.listTasks({ active: true }).length, 0, 'a dry run queues nothing');

  const heal = await reconcilePass(d, { dryRun: false });
  assert.deepEqual(kinds(heal.drift), kinds(dry.drift));
  assert.equal(heal.healed.length, 1);
  assert.deepEqual({ cluster: heal.healed[0]!.cluster, kind: heal.healed[0]!.kind }, { cluster: 'alpha', kind: 'stopped' });
  const task = await engine.waitForTask(heal.healed[0]!.taskId);
  assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
  assert.equal(task.kind, 'start');
  assert.equal(task.user, 'kindler-reconcile');
  assert.equal(engine.getCluster('alpha')!.actual, 'running');
  assert.ok(engine.getCluster('beta'), 'the missing record is kept');
  assert.ok(w.containers('k3d-stray-').length >= 1, 'the stray cluster is left alone');
  const since = w.calls().slice(callsBefore);
  assert.match(since, /"cluster","start","alpha"/);
  assert.doesNotMatch(since, /"delete"|"create"|"rm"|"stop"/, 'a reconcile creates, deletes and stops nothing here');
  const audit = engine.store.data.audit.filter((a) => a.user === 'kindler-reconcile');
  assert.deepEqual(
    audit.map((a) => `${a.action}:${a.target}:${a.source}`),
    ['start:alpha:scheduler'],
  );

  const after = await reconcilePass(d, { dryRun: false });
  assert.deepEqual(kinds(after.drift), ['missing:beta:report', 'unmanaged:stray:report']);
  assert.deepEqual(after.healed, []);
  assert.equal(lines.length, 3);
});

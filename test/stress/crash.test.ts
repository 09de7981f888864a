/**
 * Crash consistency: a real daemon gets a stream of creates and deletes over its control socket and is
 * killed with SIGKILL at random points (seeded; the seed is printed). After every restart: the state file
 * loads, no task the client was told about is lost and none it was refused appears, no cluster record is
 * lost, doubled or back from the dead, every task is terminal, no script of the dead daemon is still
 * running, and one reconcile pass leaves state and the provider (the fake docker) in agreement.
 * The journal too: finished tasks are read from state.json merged with journal/ as a start does; the
 * daemon's own `tasks` and `audit` lists hold no task twice, lose none the client was told about, and
 * have an audit event for every acknowledged action (none for a refused one, none twice).
 *
 *   KINDLER_CRASH_KILLS=100 KINDLER_CRASH_SEED=1234 node --import tsx --test test/stress/crash.test.ts
 * KINDLER_CRASH_DEBUG=1 prints each restarted daemon's log and the time each cycle took.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ctl, makeWorld, poll, startDaemon, strayProcesses, tasksOnDisk, type CtlResult, type Daemon, type World } from '../helpers.js';
import type { AuditEvent, Cluster, Task } from '../../src/core/types.js';

const KILLS = Number(process.env.KINDLER_CRASH_KILLS ?? 50);
const SEED = Number(process.env.KINDLER_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const NAMES = ['ca', 'cb', 'cc', 'cd', 'ce', 'cf'];

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Op {
  kind: 'create' | 'delete';
  name: string;
  /** accepted: the client got a task id; refused: a clear error; unknown: the daemon died first. */
  outcome: 'accepted' | 'refused' | 'unknown';
  taskId?: string;
  code: number;
  detail: string;
}

interface State {
  clusters: Cluster[];
  tasks: Task[];
}

/** The state file as the daemon left it; none yet (killed before its first write) reads as empty. */
function readState(w: World): State {
  const file = join(w.dataDir, 'state.json');
  if (!existsSync(file)) return { clusters: [], tasks: [] };
  // Finished tasks live in journal/: merged with state.json's as the next start reads them.
  return { ...(JSON.parse(readFileSync(file, 'utf8')) as State), tasks: tasksOnDisk(w.dataDir) };
}

/** The fake provider's clusters (from its own state file: an independent view), name -> running/stopped/degraded. */
function providerClusters(w: World): Map<string, { provider: string; state: string }> {
  let st: { containers: { labels: Record<string, string>; state: string }[] };
  try {
    st = JSON.parse(readFileSync(join(w.fakeDir, 'state.json'), 'utf8'));
  } catch {
    return new Map();
  }
  const by = new Map<string, { provider: string; states: string[] }>();
  for (const c of st.containers) {
    const k3d = c.labels['k3d.cluster'];
    const kind = c.labels['io.x-k8s.kind.cluster'];
    const [provider, name] = k3d ? ['k3d', k3d] : kind ? ['kind', kind] : [null, null];
    if (!provider || !name) continue;
    const e = by.get(name) ?? { provider, states: [] };
    e.states.push(c.state);
    by.set(name, e);
  }
  const out = new Map<string, { provider: string; state: string }>();
  for (const [name, e] of by) {
    const running = e.states.filter((s) => s === 'running').length;
    out.set(name, { provider: e.provider, state: running === e.states.length ? 'running' : running === 0 ? 'stopped' : 'degraded' });
  }
  return out;
}

async function submit(w: World, kind: Op['kind'], name: string, provider: string): Promise<Op> {
  const argv = kind === 'create' ? ['create', name, '--provider', provider, '--json'] : ['delete', name, '--json'];
  const r: CtlResult = await ctl(w, argv);
  if (r.dropped) return { kind, name, outcome: 'unknown', code: r.code, detail: r.err.trim() };
  if (r.code === 0) {
    const task = JSON.parse(r.out).task as Task;
    assert.equal(task.cluster, name);
    assert.equal(task.kind, kind);
    return { kind, name, outcome: 'accepted', taskId: task.id, code: 0, detail: '' };
  }
  // Refusals are clear and one line: conflict (4), not found (3), or shutting down (1).
  assert.ok([1, 3, 4].includes(r.code), `${argv.join(' ')}: exit ${r.code}: ${r.err}`);
  assert.equal(r.err.trim().split('\n').length, 1, `${argv.join(' ')}: one line: ${r.err}`);
  return { kind, name, outcome: 'refused', code: r.code, detail: r.err.trim() };
}

/** Everything that must hold right after a restart, before the daemon is asked for anything. */
function checkAfterRestart(w: World, ops: Op[], cycle: number): void {
  const st = readState(w);
  const where = `after restart ${cycle}`;
  const ids = new Set(st.tasks.map((t) => t.id));
  assert.equal(ids.size, st.tasks.length, `${where}: a task id appears twice`);
  assert.equal(new Set(st.clusters.map((c) => c.name)).size, st.clusters.length, `${where}: a cluster record appears twice`);
  for (const t of st.tasks) assert.ok(['succeeded', 'failed', 'cancelled', 'interrupted'].includes(t.state), `${where}: task ${t.id} is ${t.state}`);

  // Tasks vs what the client was told: accepted ones exist with the same kind and cluster, refused ones never made one.
  const byId = new Map(st.tasks.map((t) => [t.id, t]));
  for (const op of ops.filter((o) => o.outcome === 'accepted')) {
    const t = byId.get(op.taskId!);
    assert.ok(t, `${where}: accepted ${op.kind} ${op.name} (${op.taskId}) was lost`);
    assert.equal(t.kind, op.kind, `${where}: ${op.taskId} kind`);
    assert.equal(t.cluster, op.name, `${where}: ${op.taskId} cluster`);
  }
  const accepted = new Set(ops.filter((o) => o.outcome === 'accepted').map((o) => o.taskId));
  const unknown = ops.filter((o) => o.outcome === 'unknown');
  const reconciles = st.tasks.filter((t) => t.user === 'kindler-reconcile' || t.user === 'kindler-ttl');
  const unexplained = st.tasks.filter((t) => !accepted.has(t.id) && !reconciles.includes(t));
  // A task nobody was told about must match an op whose answer was lost, one for one.
  const pool = [...unknown];
  for (const t of unexplained) {
    const i = pool.findIndex((o) => o.kind === t.kind && o.name === t.cluster);
    assert.ok(i >= 0, `${where}: task ${t.id} (${t.kind} ${t.cluster}) was never accepted and matches no unanswered request`);
    pool.splice(i, 1);
  }

  // Records vs each cluster's task history.
  for (const name of NAMES) {
    const rec = st.clusters.find((c) => c.name === name);
    const last = st.tasks.filter((t) => t.cluster === name).pop();
    if (!last) {
      assert.equal(rec, undefined, `${where}: ${name} has a record but no task ever made it`);
      continue;
    }
    if (last.kind === 'delete' && last.state === 'succeeded') assert.equal(rec, undefined, `${where}: ${name} was deleted (${last.id}) and came back`);
    if (last.kind === 'create' && !rec) {
      const neverStarted = !last.startedAt && last.params?.newRecord === true && ['interrupted', 'cancelled'].includes(last.state);
      assert.ok(neverStarted, `${where}: the record of ${name} was lost (its last task ${last.id} is a ${last.state} create)`);
    }
    if (rec) assert.equal(rec.lastTaskId, last.id, `${where}: ${name}'s lastTaskId`);
  }
}

/**
 * Through the restarted daemon (state.json + journal as it loaded them): no task listed twice, every
 * acknowledged task there once, and the audit complete up to the last acknowledged action: an event for
 * each accepted op, none for a refused one, no task's event twice, none naming a task that does not exist.
 */
async function checkJournal(w: World, ops: Op[], cycle: number): Promise<void> {
  const where = `after restart ${cycle} (journal)`;
  const tr = await ctl(w, ['tasks', '--json', '--limit', '999999']);
  assert.equal(tr.code, 0, `${where}: tasks: ${tr.err}`);
  const tasks = (JSON.parse(tr.out) as { tasks: Task[] }).tasks;
  const ids = tasks.map((t) => t.id);
  assert.equal(new Set(ids).size, ids.length, `${where}: a task is listed twice`);
  const known = new Set(ids);
  for (const op of ops)
    if (op.outcome === 'accepted') assert.ok(known.has(op.taskId!), `${where}: accepted ${op.kind} ${op.name} (${op.taskId}) missing from tasks`);
  const ar = await ctl(w, ['audit', '--json', '--limit', '999999']);
  assert.equal(ar.code, 0, `${where}: audit: ${ar.err}`);
  const events = (JSON.parse(ar.out) as { events: AuditEvent[] }).events;
  const taskEvents = events.filter((e) => e.taskId && (e.action === 'create' || e.action === 'delete'));
  const seen = new Set<string>();
  for (const e of taskEvents) {
    assert.ok(!seen.has(e.taskId!), `${where}: the audit has ${e.action} ${e.target} (${e.taskId}) twice`);
    seen.add(e.taskId!);
    assert.ok(known.has(e.taskId!), `${where}: the audit names task ${e.taskId} (${e.action} ${e.target}), which does not exist`);
  }
  for (const op of ops) {
    if (op.outcome !== 'accepted') continue;
    const e = taskEvents.find((x) => x.taskId === op.taskId);
    assert.ok(e, `${where}: no audit event for the acknowledged ${op.kind} ${op.name} (${op.taskId})`);
    assert.deepEqual([e.action, e.target, e.result], [op.kind, op.name, 'ok'], `${where}: the audit event of ${op.taskId}`);
  }
  // Every task made by a create or delete request has its event (also those whose answer was lost).
  for (const t of tasks)
    if ((t.kind === 'create' || t.kind === 'delete') && t.user !== 'kindler-reconcile' && t.user !== 'kindler-ttl')
      assert.ok(seen.has(t.id), `${where}: task ${t.id} (${t.kind} ${t.cluster}) has no audit event`);
}

/** After the daemon settled and one reconcile pass ran: state and the provider agree. */
function checkAgreement(w: World, cycle: number): void {
  const st = readState(w);
  const prov = providerClusters(w);
  const where = `after reconcile ${cycle}`;
  for (const [name, p] of prov) {
    const rec = st.clusters.find((c) => c.name === name);
    assert.ok(rec, `${where}: the provider has ${p.provider} cluster ${name} (${p.state}) but state has no record`);
    assert.equal(rec.provider, p.provider, `${where}: ${name} provider`);
  }
  for (const c of st.clusters) {
    const p = prov.get(c.name);
    const got = p?.state ?? 'absent';
    const fine =
      (c.actual === 'running' && got === 'running') ||
      (c.actual === 'stopped' && got === 'stopped') ||
      (c.actual === 'absent' && got === 'absent') ||
      (c.actual === 'failed' && (got === 'absent' || /leftovers|provider reports/.test(c.lastError ?? '')));
    assert.ok(fine, `${where}: ${c.name} is recorded ${c.actual} (desired ${c.desired}, ${c.lastError ?? ''}) but the provider has it ${got}`);
  }
}

/** The daemon is idle: no task open, no record in a passing state (its re-checks are done). */
async function settle(w: World, what: string, d: Daemon): Promise<void> {
  const open = () => {
    const st = readState(w);
    return [
      ...st.tasks
        .filter((t) => t.state === 'queued' || t.state === 'running')
        .map((t) => `task ${t.id} ${t.kind} ${t.cluster} ${t.state} (step ${t.step ?? '-'})`),
      ...st.clusters.filter((c) => ['creating', 'deleting', 'unknown'].includes(c.actual)).map((c) => `cluster ${c.name} ${c.actual} (${c.lastError ?? ''})`),
    ];
  };
  try {
    await poll(() => open().length === 0, 60000, what);
  } catch (e) {
    throw new Error(`${(e as Error).message}: still open: ${open().join('; ')}\ndaemon log:\n${d.output().split('\n').slice(-40).join('\n')}`);
  }
}

test(`crash consistency: ${KILLS} SIGKILLs of the daemon during creates and deletes`, async (t) => {
  process.stderr.write(`crash test: seed ${SEED}, ${KILLS} kills (replay with KINDLER_CRASH_SEED=${SEED})\n`);
  t.diagnostic(`seed ${SEED}`);
  const rand = prng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const w = makeWorld({
    concurrency: 2,
    cancelGraceSeconds: 1,
    timeouts: { create: 30, delete: 30, start: 30, stop: 30, 'import-image': 30, status: 15 },
    // Only on request: a scheduled pass must not interleave with the test's own.
    schedules: { reconcile: '0 0 1 1 *', ttl: '0 0 1 1 *', retention: '0 0 1 1 *' },
  });
  // Small provider delays, so kills land inside the scripts' steps and inside the provider's calls.
  w.rule('k3d.cluster-create', 'delay 0.3');
  w.rule('kind.create-cluster', 'delay 0.3');
  w.rule('k3d.cluster-delete', 'delay-before 0.2');
  w.rule('kind.delete-cluster', 'delay-before 0.2');
  let daemon: Daemon | null = null;
  t.after(async () => {
    if (daemon) await daemon.stop();
    w.cleanup();
  });
  const ops: Op[] = [];
  const started = Date.now();
  let accepted = 0;
  let unknown = 0;
  for (let cycle = 0; cycle <= KILLS; cycle++) {
    const t0 = Date.now();
    daemon = await startDaemon(w);
    const d = daemon;
    const t1 = Date.now();
    if (cycle > 0) {
      // Recovery ran before "started": no process of the dead daemon's scripts may still run.
      const strays = strayProcesses(w, [d.proc.pid!, process.pid]);
      assert.deepEqual(
        strays.map((p) => `${p.pid} (group ${p.pgid}): ${p.cmd}`),
        [],
        `after restart ${cycle}: processes left by the killed daemon`,
      );
      checkAfterRestart(w, ops, cycle);
      await checkJournal(w, ops, cycle);
      await settle(w, `the daemon to settle after restart ${cycle}`, d);
      const rec = await ctl(w, ['reconcile', '--json']);
      assert.equal(rec.code, 0, `reconcile after restart ${cycle}: ${rec.out}${rec.err}`);
      await settle(w, `the reconcile's tasks after restart ${cycle}`, d);
      checkAgreement(w, cycle);
      if (process.env.KINDLER_CRASH_DEBUG)
        process.stderr.write(`${d.output()}cycle ${cycle}: start ${t1 - t0} ms, checks+settle+reconcile ${Date.now() - t1} ms\n`);
    }
    if (cycle === KILLS) break;

    // A stream of requests from up to three clients at once, until the kill.
    const killAt = Date.now() + Math.floor(rand() * 2000);
    const inflight = new Set<Promise<void>>();
    let killed = false;
    const client = async () => {
      while (!killed) {
        const kind = rand() < 0.55 ? 'create' : 'delete';
        const op = await submit(w, kind, pick(NAMES), pick(['k3d', 'kind']));
        ops.push(op);
        if (op.outcome === 'unknown') return;
        // Pacing (not synchronisation): a few requests per second per client, like people and scripts.
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 200)));
      }
    };
    for (let i = 0; i < 3; i++) {
      const p = client();
      inflight.add(p);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, killAt - Date.now())));
    killed = true;
    d.proc.kill('SIGKILL');
    await d.exited;
    await Promise.all(inflight);
    daemon = null;
  }
  accepted = ops.filter((o) => o.outcome === 'accepted').length;
  unknown = ops.filter((o) => o.outcome === 'unknown').length;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`crash test: ${KILLS} kills, ${ops.length} requests (${accepted} accepted, ${unknown} unanswered), ${secs} s, seed ${SEED}\n`);
  assert.ok(accepted > KILLS / 2, `too few requests were accepted (${accepted}) to mean anything`);
});

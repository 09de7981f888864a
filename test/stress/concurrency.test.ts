/**
 * Concurrency against a real daemon, through separate connections to its control socket (each one a
 * client, as two `kindler` processes or two SSH sessions would be):
 * - 100 rounds of two clients creating the same name at the same instant: exactly one task per round,
 *   the other refused with a one-line conflict (exit 4);
 * - 50 concurrent creates: every one succeeds or fails truthfully, and no host port is handed out or
 *   bound twice (checked in state and in the fake docker's published ports).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tryConnect, runRemote } from '../../src/control/client.js';
import { ctl, makeWorld, poll, startDaemon, tasksOnDisk, type World } from '../helpers.js';
import type { Cluster, Task } from '../../src/core/types.js';

interface Answer {
  code: number;
  out: string;
  err: string;
}

/** Connects `n` clients first, then sends each its request in the same tick: as simultaneous as it gets. */
async function together(w: World, argvs: string[][]): Promise<Answer[]> {
  const socks = await Promise.all(argvs.map(() => tryConnect(join(w.dataDir, 'kindler.sock'))));
  return Promise.all(
    socks.map((sock, i) => {
      assert.ok(sock, 'the daemon listens');
      const a: Answer = { code: -1, out: '', err: '' };
      return runRemote(
        sock,
        { type: 'run', argv: argvs[i]!, user: `client${i}`, isTTY: false, columns: 120, files: {} },
        {
          out: (s) => (a.out += s),
          err: (s) => (a.err += s),
        },
      ).then((code) => ({ ...a, code }));
    }),
  );
}

function state(w: World): { clusters: Cluster[]; tasks: Task[] } {
  // Finished tasks are in the journal: merged as the next start reads them.
  return { ...JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8')), tasks: tasksOnDisk(w.dataDir) };
}

test('100 rounds of two clients creating the same name at once: exactly one task each round', async (t) => {
  const w = makeWorld({ concurrency: 1, schedules: { reconcile: '0 0 1 1 *', ttl: '0 0 1 1 *', retention: '0 0 1 1 *' } });
  // Creates stay active (the provider hangs), so every second request meets a live task, never a finished one.
  w.rule('k3d.cluster-create', 'hang');
  w.rule('kind.create-cluster', 'hang');
  const d = await startDaemon(w);
  t.after(async () => {
    await d.stop();
    w.cleanup();
  });
  const started = Date.now();
  const ROUNDS = 100;
  // One blocker runs (and hangs) under concurrency 1: every race task stays queued, and is cancelled after
  // its round, which frees its ports and record again, so the rounds never run out of either.
  const blocker = await ctl(w, ['create', 'blocker', '--json']);
  assert.equal(blocker.code, 0, blocker.err);
  for (let i = 0; i < ROUNDS; i++) {
    const name = `race${i}`;
    const provider = i % 2 ? 'kind' : 'k3d';
    const answers = await together(w, [
      ['create', name, '--provider', provider, '--json'],
      ['create', name, '--provider', provider, '--json'],
    ]);
    const won = answers.filter((a) => a.code === 0);
    const lost = answers.filter((a) => a.code !== 0);
    assert.equal(won.length, 1, `round ${i}: exactly one create is accepted: ${JSON.stringify(answers)}`);
    assert.equal(lost[0]!.code, 4, `round ${i}: the other is a conflict (exit 4): ${JSON.stringify(lost[0])}`);
    assert.equal(lost[0]!.err.trim().split('\n').length, 1, `round ${i}: one line`);
    const task = JSON.parse(won[0]!.out).task as Task;
    assert.match(
      lost[0]!.err,
      new RegExp(`^error: cluster "${name}" already has create task ${task.id} queued`),
      `round ${i}: a clear conflict naming the task`,
    );
    const c = await ctl(w, ['cancel', task.id, '--json']);
    assert.equal(c.code, 0, c.err);
  }
  const st = state(w);
  for (let i = 0; i < ROUNDS; i++) {
    assert.equal(st.tasks.filter((x) => x.cluster === `race${i}`).length, 1, `race${i}: one task`);
    assert.equal(st.tasks.find((x) => x.cluster === `race${i}`)!.state, 'cancelled');
  }
  assert.equal(st.tasks.length, ROUNDS + 1);
  assert.deepEqual(
    st.clusters.map((c) => c.name),
    ['blocker'],
    'a create cancelled before it started leaves no record',
  );
  t.diagnostic(`${ROUNDS} rounds in ${Date.now() - started} ms`);
});

test('50 concurrent creates: all succeed or fail truthfully, and no port is handed out or bound twice', async (t) => {
  const w = makeWorld({ schedules: { reconcile: '0 0 1 1 *', ttl: '0 0 1 1 *', retention: '0 0 1 1 *' } });
  // Room for 50 clusters: three ranges of 50 from this world's base.
  const b = w.cfg.ports.http.from;
  const cfg = JSON.parse(readFileSync(w.configFile, 'utf8'));
  cfg.concurrency = 4;
  cfg.ports = { http: { from: b, to: b + 49 }, https: { from: b + 50, to: b + 99 }, api: { from: b + 100, to: b + 149 } };
  writeFileSync(w.configFile, JSON.stringify(cfg, null, 2));
  const d = await startDaemon(w);
  t.after(async () => {
    await d.stop();
    w.cleanup();
  });
  const started = Date.now();
  const N = 50;
  // Two in three are kind (one shared docker network): docker has about 31 address pools and every k3d
  // cluster takes a network of its own, so 50 k3d creates would partly fail, truthfully, for that reason.
  const answers = await together(
    w,
    Array.from({ length: N }, (_, i) => ['create', `many${i}`, '--provider', i % 3 ? 'kind' : 'k3d', '--json']),
  );
  const ids: string[] = [];
  for (const [i, a] of answers.entries()) {
    assert.equal(a.code, 0, `many${i}: ${a.err}`);
    ids.push((JSON.parse(a.out).task as Task).id);
  }
  assert.equal(new Set(ids).size, N, 'one task each');
  await poll(() => state(w).tasks.every((x) => x.state !== 'queued' && x.state !== 'running'), 300000, 'every create to end');

  const st = state(w);
  const ports = new Map<number, string>();
  for (const c of st.clusters) {
    for (const p of [c.httpPort, c.httpsPort, c.apiPort]) {
      assert.ok(!ports.has(p), `port ${p} is given to both ${ports.get(p)} and ${c.name}`);
      ports.set(p, c.name);
    }
  }
  assert.equal(ports.size, 3 * N);
  // Truthful ends: a success is running at the provider, a failure says why and left nothing behind.
  const fake = JSON.parse(readFileSync(join(w.fakeDir, 'state.json'), 'utf8')) as {
    containers: { name: string; labels: Record<string, string>; state: string; bound?: { hostPort: string }[] }[];
  };
  let failedCount = 0;
  for (const id of ids) {
    const task = st.tasks.find((x) => x.id === id)!;
    const c = st.clusters.find((x) => x.name === task.cluster)!;
    const mine = fake.containers.filter((x) => x.labels['k3d.cluster'] === c.name || x.labels['io.x-k8s.kind.cluster'] === c.name);
    if (task.state === 'succeeded') {
      assert.equal(c.actual, 'running', `${c.name}`);
      assert.ok(mine.length > 0 && mine.every((x) => x.state === 'running'), `${c.name} runs at the provider`);
    } else {
      failedCount++;
      assert.equal(task.state, 'failed', `${c.name}: ${task.state}`);
      assert.ok(task.error?.reason, `${c.name} failed with a reason`);
      assert.equal(c.actual, 'failed');
      assert.deepEqual(mine, [], `${c.name} failed and left nothing`);
    }
  }
  // The provider's bound host ports: none bound twice, and each running cluster holds its three ports.
  const bound = new Map<string, string>();
  for (const c of fake.containers) {
    const owner = c.labels['k3d.cluster'] ?? c.labels['io.x-k8s.kind.cluster'] ?? c.name;
    for (const b of c.bound ?? []) {
      assert.ok(!bound.has(b.hostPort), `host port ${b.hostPort} bound by both ${bound.get(b.hostPort)} and ${owner}`);
      bound.set(b.hostPort, owner);
    }
  }
  for (const c of st.clusters.filter((x) => x.actual === 'running')) {
    for (const p of [c.httpPort, c.httpsPort, c.apiPort]) assert.equal(bound.get(String(p)), c.name, `${c.name} holds its port ${p} at the provider`);
  }
  const reasons = ids
    .map((id) => st.tasks.find((x) => x.id === id)!)
    .filter((x) => x.state !== 'succeeded')
    .map((x) => `${x.cluster}: ${x.error?.reason}`);
  assert.equal(failedCount, 0, `with distinct free ports every create succeeds; failed: ${reasons.join(' | ')}`);
  const ok = await ctl(w, ['list', '--json']);
  assert.equal(JSON.parse(ok.out).clusters.length, N);
  t.diagnostic(`${N} concurrent creates finished in ${Date.now() - started} ms`);
});

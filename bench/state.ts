/**
 * State-scale benchmark: a state.json with 1,000 clusters and 20,000 finished tasks.
 *
 * - Daemon start: `Engine.start` (lock, Store.open with validation, recovery) on that file, and
 *   `Store.open` alone; baseline `JSON.parse(readFileSync(file))`. Target: ≤ 1 s.
 * - State write: p95 of `store.update(d => { d.nextTaskSeq++ })` over 50 sequential writes
 *   (atomic: temp file, fsync, rename); baseline a plain `writeFileSync` of the same JSON text.
 *   Target: p95 ≤ 20 ms.
 *
 * Prints one JSON object to stdout and a short table to stderr.
 * Run: node --import tsx bench/state.ts
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Task } from '../src/core/types.js';
import { Engine } from '../src/engine/engine.js';
import { SCHEMA_VERSION, Store, stateProblem, type StateData } from '../src/store/state.js';
import { makeWorld, scriptEnv } from '../test/helpers.js';
import { fmt, pct, table } from './util.js';

const CLUSTERS = 1000;
const TASKS = 20000;
const WRITES = 50;
const START_REPS = 5;

function buildState(dataDir: string): StateData {
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  const iso = (ms: number) => new Date(t0 + ms).toISOString();
  const clusters: Cluster[] = Array.from({ length: CLUSTERS }, (_, i) => ({
    name: `c${String(i).padStart(4, '0')}`,
    provider: i % 5 === 0 ? 'kind' : 'k3d',
    servers: 1,
    agents: i % 3,
    httpPort: 30000 + i,
    httpsPort: 40000 + i,
    apiPort: 50000 + i,
    owner: `user${i % 25}`,
    createdAt: iso(i * 60_000),
    desired: i % 7 === 0 ? 'stopped' : 'present',
    actual: i % 7 === 0 ? 'stopped' : 'running',
    kubeContext: `${i % 5 === 0 ? 'kind' : 'k3d'}-c${String(i).padStart(4, '0')}`,
    kubeconfig: join(dataDir, 'kubeconfig', `c${String(i).padStart(4, '0')}.yaml`),
    nodeAddress: `172.18.${Math.floor(i / 250)}.${(i % 250) + 2}`,
    lastTaskId: `t-${i + 1}`,
    steps: [
      { key: 'preflight', title: 'Checking tools', state: 'succeeded', at: iso(i * 60_000 + 1000), taskId: `t-${i + 1}` },
      { key: 'create', title: 'Creating cluster', state: 'succeeded', at: iso(i * 60_000 + 30_000), taskId: `t-${i + 1}` },
      { key: 'kubeconfig', title: 'Writing kubeconfig', state: 'succeeded', at: iso(i * 60_000 + 31_000), taskId: `t-${i + 1}` },
    ],
    updatedAt: iso(i * 60_000 + 31_000),
  }));
  const kinds = ['create', 'start', 'stop', 'delete', 'import-image'] as const;
  const tasks: Task[] = Array.from({ length: TASKS }, (_, i) => {
    const at = i * 30_000;
    const failed = i % 17 === 0;
    return {
      id: `t-${i + 1}`,
      kind: kinds[i % kinds.length]!,
      cluster: `c${String(i % CLUSTERS).padStart(4, '0')}`,
      user: `user${i % 25}`,
      state: failed ? 'failed' : 'succeeded',
      progress: failed ? 66 : 100,
      steps: [
        { n: 1, of: 3, key: 'preflight', title: 'Checking tools', state: 'succeeded', startedAt: iso(at + 100), finishedAt: iso(at + 1000) },
        { n: 2, of: 3, key: 'create', title: 'Creating cluster', state: 'succeeded', startedAt: iso(at + 1000), finishedAt: iso(at + 20_000) },
        { n: 3, of: 3, key: 'kubeconfig', title: 'Writing kubeconfig', state: failed ? 'failed' : 'succeeded', startedAt: iso(at + 20_000), finishedAt: iso(at + 21_000) },
      ],
      createdAt: iso(at),
      startedAt: iso(at + 50),
      finishedAt: iso(at + 21_000),
      exitCode: failed ? 1 : 0,
      notes: i % 11 === 0 ? ['k3d cluster was already absent'] : [],
      ...(failed ? { error: { reason: 'kubectl wait failed (exit 1): timed out waiting for the condition', stderrTail: ['error: timed out waiting for the condition on nodes/k3d-x-server-0'] } } : {}),
      params: { newRecord: true, pid: 10000 + i, pidStart: '123456' },
      logLines: 40,
    };
  });
  return { schemaVersion: SCHEMA_VERSION, nextTaskSeq: TASKS + 1, clusters, tasks, audit: [] };
}

async function main(): Promise<void> {
  const w = makeWorld({ checkHostPorts: false });
  try {
    const state = buildState(w.dataDir);
    const problem = stateProblem(state);
    if (problem) throw new Error(`generated state is invalid: ${problem}`);
    const file = join(w.dataDir, 'state.json');
    const text = JSON.stringify(state);
    writeFileSync(file, text, { mode: 0o600 });
    const bytes = statSync(file).size;

    // ---- start: baseline parse, Store.open, Engine.start (each repeated; the first counts as cold) ----
    const parseMs: number[] = [];
    const openMs: number[] = [];
    const startMs: number[] = [];
    for (let i = 0; i < START_REPS; i++) {
      let t0 = performance.now();
      const doc = JSON.parse(readFileSync(file, 'utf8')) as StateData;
      parseMs.push(performance.now() - t0);
      if (doc.tasks.length !== TASKS) throw new Error('baseline parse read the wrong file');

      t0 = performance.now();
      const store = await Store.open(w.dataDir);
      openMs.push(performance.now() - t0);
      if (store.data.clusters.length !== CLUSTERS) throw new Error('Store.open lost clusters');

      t0 = performance.now();
      const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
      startMs.push(performance.now() - t0);
      if (engine.busy) throw new Error('engine started re-checks on a healthy state (benchmark state is wrong)');
      await engine.shutdown();
    }

    // ---- writes: kindler's atomic update vs a plain writeFileSync of the same text ----
    const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
    const writeMs: number[] = [];
    const plainMs: number[] = [];
    const plainFile = join(w.dir, 'plain.json');
    try {
      await engine.store.update((d) => { d.nextTaskSeq++; }); // warm-up
      writeFileSync(plainFile, text);
      for (let i = 0; i < WRITES; i++) {
        let t0 = performance.now();
        await engine.store.update((d) => { d.nextTaskSeq++; });
        writeMs.push(performance.now() - t0);
        t0 = performance.now();
        writeFileSync(plainFile, text);
        plainMs.push(performance.now() - t0);
      }
    } finally {
      await engine.shutdown();
    }
    const after = JSON.parse(readFileSync(file, 'utf8')) as StateData;
    if (after.nextTaskSeq !== TASKS + 1 + WRITES + 1) throw new Error(`writes were lost: nextTaskSeq ${after.nextTaskSeq}`);

    const startP50 = pct(startMs, 50);
    const startMax = Math.max(...startMs);
    const wP95 = pct(writeMs, 95);
    const result = {
      bench: 'state',
      clusters: CLUSTERS,
      tasks: TASKS,
      stateBytes: bytes,
      start: {
        reps: START_REPS,
        engineStartMs: { first: fmt(startMs[0]!), p50: fmt(startP50), max: fmt(startMax) },
        storeOpenMs: { first: fmt(openMs[0]!), p50: fmt(pct(openMs, 50)) },
        baselineParseMs: { first: fmt(parseMs[0]!), p50: fmt(pct(parseMs, 50)) },
        ratioStartP50: fmt(startP50 / pct(parseMs, 50), 2),
        ratioOpenP50: fmt(pct(openMs, 50) / pct(parseMs, 50), 2),
        targetMs: 1000,
        pass: startMax <= 1000,
      },
      write: {
        writes: WRITES,
        updateMs: { p50: fmt(pct(writeMs, 50)), p95: fmt(wP95), max: fmt(Math.max(...writeMs)) },
        baselineWriteFileSyncMs: { p50: fmt(pct(plainMs, 50)), p95: fmt(pct(plainMs, 95)) },
        ratioP95: fmt(wP95 / pct(plainMs, 95), 2),
        targetMs: 20,
        pass: wP95 <= 20,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.stderr.write(table(`state (${CLUSTERS} clusters, ${TASKS} tasks, ${(bytes / 1e6).toFixed(1)} MB)`, [
      ['metric', 'kindler', 'baseline', 'ratio', 'target', 'pass'],
      ['Engine.start p50 / max (ms)', `${fmt(startP50)} / ${fmt(startMax)}`, fmt(pct(parseMs, 50)), String(result.start.ratioStartP50), '≤ 1000', String(result.start.pass)],
      ['Store.open p50 (ms)', fmt(pct(openMs, 50)), fmt(pct(parseMs, 50)), String(result.start.ratioOpenP50), '', ''],
      ['state write p50 (ms)', fmt(pct(writeMs, 50)), fmt(pct(plainMs, 50)), '-', '', ''],
      ['state write p95 (ms)', fmt(wP95), fmt(pct(plainMs, 95)), String(result.write.ratioP95), '≤ 20', String(result.write.pass)],
    ]));
  } finally {
    w.cleanup();
  }
}

await main();

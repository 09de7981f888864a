/**
 * Store cost at scale (issue 17): a data dir with 1,000 clusters, 20,000 finished tasks and 100,000
 * audit events (written as a version-2 state.json; the journal code migrates it at the first start,
 * timed apart). Measures, in one process:
 *   - start: Engine.start on the data dir (after any migration), START_REPS times;
 *   - write: p95 of `store.update(d => { d.nextTaskSeq++ })` over WRITES sequential writes;
 *   - create: p95 of the time `engine.create` takes to resolve (the task admitted and durable), and the
 *     largest event-loop delay seen during those creates (perf_hooks.monitorEventLoopDelay, 1 ms).
 * Runs on the code before the journal and after it alike. Prints one JSON line.
 *   node --import tsx test/perf/store-journal.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Engine } from '../../src/engine/engine.js';
import { ALICE, makeWorld, startEngine } from '../helpers.js';
import { v2State } from '../fixtures/journal/make.js';

const WRITES = Number(process.env.WRITES ?? 40);
const CREATES = Number(process.env.CREATES ?? 15);
const START_REPS = Number(process.env.START_REPS ?? 3);
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;

// Ports of their own: the 1,000 recorded clusters hold 30000-30999, 40000-40999 and 50000-50999.
const w = makeWorld({
  auditMaxEvents: 0,
  concurrency: 2,
  cancelGraceSeconds: 1,
  ports: { http: { from: 61000, to: 61099 }, https: { from: 62000, to: 62099 }, api: { from: 63000, to: 63099 } },
});
w.rule('k3d.cluster-create', 'hang');
writeFileSync(join(w.dataDir, 'state.json'), JSON.stringify(v2State(w.dataDir, { clusters: 1000, tasks: 20000, events: 100000 })));
let t0 = performance.now();
let engine: Engine = await startEngine(w);
const firstStart = performance.now() - t0;
await engine.shutdown();
const starts: number[] = [];
for (let i = 0; i < START_REPS; i++) {
  t0 = performance.now();
  engine = await startEngine(w);
  starts.push(performance.now() - t0);
  if (i < START_REPS - 1) await engine.shutdown();
}
const writes: number[] = [];
for (let i = 0; i < WRITES; i++) {
  t0 = performance.now();
  await engine.store.update((d) => void d.nextTaskSeq++);
  writes.push(performance.now() - t0);
}
const creates: number[] = [];
const h = monitorEventLoopDelay({ resolution: 1 });
for (let i = 0; i < CREATES; i++) {
  h.enable();
  t0 = performance.now();
  const task = await engine.create({ name: `bench${i}`, provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  creates.push(performance.now() - t0);
  h.disable();
  await engine.cancel(task.id, ALICE).catch(() => undefined);
  await engine.waitForTask(task.id);
}
await engine.shutdown();
w.cleanup();
console.log(
  JSON.stringify({
    startMs: starts.map(r1),
    firstStartMs: r1(firstStart),
    writeP95Ms: r1(p95(writes)),
    writeP50Ms: r1([...writes].sort((a, b) => a - b)[Math.floor(writes.length / 2)]!),
    createP95Ms: r1(p95(creates)),
    loopDelayMaxMs: r1(h.max / 1e6),
  }),
);

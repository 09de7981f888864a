/**
 * State-scale benchmark: a state.json with BENCH_CLUSTERS (1,000) clusters, BENCH_TASKS (20,000)
 * finished tasks and BENCH_AUDIT (100,000) audit events.
 *
 * - Daemon start: `Engine.start` (lock, Store.open with validation, recovery) on that file, and
 *   `Store.open` alone; baseline `JSON.parse(readFileSync(file))`. Target: ≤ 1 s.
 * - State write: p95 of `store.update(d => { d.nextTaskSeq++ })` over 50 sequential writes
 *   (atomic: temp file, fsync, rename). Floor, interleaved: the same bytes (the file as the store
 *   just wrote it, already serialised) written to a temp file, fsynced and renamed by hand. Also
 *   shown, for reference only: `writeFileSync` of the text without fsync. This process's event-loop
 *   delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) while the writes run: max and p99.
 *   Target: p95 ≤ 20 ms.
 * - Write size sweep: the same write p95 (30 writes) with the clusters and audit events above and
 *   0 / 2,000 / 5,000 / 20,000 tasks (BENCH_SWEEP), each against the same fsynced floor.
 * - Table frame: the real TUI (LocalSession on the engine, 120x40) over that state; time from a
 *   selection key (j/k) to the frame it produces, and a full relayout (resize); baseline the same
 *   frames with two clusters. Target: p95 ≤ 16 ms.
 *
 * Repeated BENCH_RUNS (5) times in fresh processes by util.ts runBench: median [min–max].
 * Prints one JSON object to stdout and a short table to stderr.
 * Run: node --import tsx bench/state.ts
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { LocalSession } from '../src/commands/session.js';
import { openTui } from '../src/tui/index.js';
import { sharedFrames } from '../src/tui/frames.js';
import { Engine } from '../src/engine/engine.js';
import { Store, type StateData } from '../src/store/state.js';
import { makeWorld, scriptEnv } from '../test/helpers.js';
import { buildState, fmt, loopDelayRecorder, machine, pct, runBench, table } from './util.js';

const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? 1000);
const TASKS = Number(process.env.BENCH_TASKS ?? 20000);
const AUDIT = Number(process.env.BENCH_AUDIT ?? 100000);
const SWEEP = (process.env.BENCH_SWEEP ?? '0,2000,5000,20000').split(',').map(Number);
const FRAMES = 40;
const WRITES = 50;
const START_REPS = 5;

/** Write p95 through the store at one size, and its floor: the same atomic protocol by hand. */
async function writeSweep(tasks: number) {
  const w = makeWorld({ checkHostPorts: false, auditMaxEvents: Math.max(5000, AUDIT * 2) });
  try {
    const doc = buildState(w.dataDir, CLUSTERS, tasks, AUDIT);
    const file = join(w.dataDir, 'state.json');
    writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
    const bytes = statSync(file).size;
    const store = await Store.open(w.dataDir);
    await store.update((d) => { d.nextTaskSeq++; });
    const upd: number[] = [];
    const floor: number[] = [];
    const floorFile = join(w.dir, 'floor.json');
    for (let i = 0; i < 30; i++) {
      let t0 = performance.now();
      await store.update((d) => { d.nextTaskSeq++; });
      upd.push(performance.now() - t0);
      floor.push(floorWrite(readFileSync(file), floorFile));
    }
    return {
      tasks,
      bytes,
      updateMs: { p50: fmt(pct(upd, 50)), p95: fmt(pct(upd, 95)) },
      floorMs: { p50: fmt(pct(floor, 50)), p95: fmt(pct(floor, 95)) },
      ratioP95: fmt(pct(upd, 95) / pct(floor, 95), 2),
    };
  } finally {
    w.cleanup();
  }
}

/**
 * Frame times of the real TUI over a state: j/k selection frames and full relayouts (resize),
 * each timed from the input to the frame's write on the terminal stream.
 */
async function tableFrames(state: StateData): Promise<{ key: number[]; full: number[]; lone: number[] }> {
  const w = makeWorld({ checkHostPorts: false, auditMaxEvents: Math.max(5000, AUDIT * 2) });
  const engine = await (async () => {
    writeFileSync(join(w.dataDir, 'state.json'), JSON.stringify(state), { mode: 0o600 });
    return Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
  })();
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: (_: boolean) => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: 120, rows: 40 });
  let onFrame: (() => void) | null = null;
  let text = '';
  output.on('data', (d: Buffer) => {
    text = (text + d.toString('latin1')).slice(-20000);
    onFrame?.();
  });
  const frame = (act: () => void) => new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
    onFrame = () => {
      onFrame = null;
      clearTimeout(timer);
      resolve(performance.now() - t0);
    };
    act();
  });
  const session = new LocalSession(engine, { user: 'user0', role: 'admin', source: 'bench' }, 'bench');
  // One session, the same few screens over and over: frames shared between sessions would let it
  // replay its own earlier frames without rendering. This times the render, so every frame renders.
  sharedFrames.enabled = false;
  let exited = false;
  // Keys and resizes go back to back here, so the per-session render budget (which holds a session's
  // frames past 100 ms of drawing a second) is lifted: this measures the cost of one frame.
  const handle = openTui({ input, output, columns: 120, rows: 40, backend: session, renderBudget: { ms: 1e9, perMs: 1000 }, onExit: () => { exited = true; } });
  try {
    // The first complete frame: the last cluster's name is drawn once the snapshot arrived.
    const last = state.clusters[0]!.name;
    const deadline = Date.now() + 10_000;
    while (!text.includes(last)) {
      if (Date.now() > deadline) throw new Error('the table never showed its rows');
      await new Promise<void>((r) => { onFrame = () => { onFrame = null; r(); }; setTimeout(r, 50); });
    }
    const key: number[] = [];
    const full: number[] = [];
    const lone: number[] = [];
    for (let i = 0; i < FRAMES; i++) {
      key.push(await frame(() => input.write(i % 2 ? 'k' : 'j')));
      full.push(await frame(() => handle.resize(i % 2 ? 120 : 119, 40)));
    }
    // A lone resize: the last reflow lies more than the TUI's 16 ms reflow frame gap back, so the
    // frame is drawn at once and its time is the relayout's own cost (the figure above, resizes
    // back to back, includes waiting for that gap, which is how a burst of window changes is drawn).
    for (let i = 0; i < FRAMES; i++) {
      await new Promise((r) => setTimeout(r, 25));
      lone.push(await frame(() => handle.resize(i % 2 ? 120 : 119, 40)));
    }
    return { key, full, lone };
  } finally {
    handle.close();
    if (!exited) throw new Error('the TUI did not close');
    session.close();
    await engine.shutdown();
    w.cleanup();
  }
}

/** The floor of a state write: the same bytes written to a temp file, fsynced and renamed by hand; returns ms. */
function floorWrite(bytes: Buffer, floorFile: string): number {
  const t0 = performance.now();
  const fd = openSync(`${floorFile}.tmp`, 'w', 0o600);
  writeSync(fd, bytes);
  fsyncSync(fd);
  closeSync(fd);
  renameSync(`${floorFile}.tmp`, floorFile);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const w = makeWorld({ checkHostPorts: false, auditMaxEvents: Math.max(5000, AUDIT * 2) });
  try {
    const load0 = machine();
    const state = buildState(w.dataDir, CLUSTERS, TASKS, AUDIT);
    const file = join(w.dataDir, 'state.json');
    const text = JSON.stringify(state);
    writeFileSync(file, text, { mode: 0o600 });
    const bytes = statSync(file).size;

    // ---- start: baseline parse, Store.open, Engine.start (each repeated; the first counts as cold) ----
    const parseMs: number[] = [];
    const openMs: number[] = [];
    const startMs: number[] = [];
    // The first open migrates the file to the journal layout (finished tasks and audit events move to
    // dataDir/journal); it is timed on its own. Every later start reads state.json plus the journals.
    const t0m = performance.now();
    const first = await Store.open(w.dataDir);
    await first.update((d) => { d.nextTaskSeq++; }); // the first write moves finished records out
    const migrateMs = performance.now() - t0m;
    const journalDir = join(w.dataDir, 'journal');
    if (!existsSync(journalDir)) throw new Error('the first write made no journal');
    for (let i = 0; i < START_REPS; i++) {
      let t0 = performance.now();
      // The baseline: JSON.parse of the same bytes kindler reads (state.json and every journal line).
      const doc = JSON.parse(readFileSync(file, 'utf8')) as StateData;
      let journalTasks = 0;
      for (const f of readdirSync(journalDir)) {
        for (const line of readFileSync(join(journalDir, f), 'utf8').split('\n')) {
          if (!line) continue;
          JSON.parse(line);
          if (f.startsWith('tasks-')) journalTasks++;
        }
      }
      parseMs.push(performance.now() - t0);
      if (doc.tasks.length + journalTasks < TASKS) throw new Error(`baseline parse found ${doc.tasks.length + journalTasks} tasks, not ${TASKS}`);

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

    // ---- writes: kindler's atomic update vs its floor, the same bytes written, fsynced and renamed ----
    const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
    const writeMs: number[] = [];
    const floorMs: number[] = [];
    const plainMs: number[] = [];
    const plainFile = join(w.dir, 'plain.json');
    const floorFile = join(w.dir, 'floor.json');
    const loop = loopDelayRecorder();
    try {
      await engine.store.update((d) => { d.nextTaskSeq++; }); // warm-up
      writeFileSync(plainFile, text);
      for (let i = 0; i < WRITES; i++) {
        let t0 = performance.now();
        await loop.during(() => engine.store.update((d) => { d.nextTaskSeq++; }));
        writeMs.push(performance.now() - t0);
        // the floor: the bytes now on disk (already serialised), written to a temp file, fsynced, renamed
        floorMs.push(floorWrite(readFileSync(file), floorFile));
        // for reference only: writeFileSync of the same text, no fsync (page cache)
        t0 = performance.now();
        writeFileSync(plainFile, text);
        plainMs.push(performance.now() - t0);
      }
    } finally {
      await engine.shutdown();
    }
    const after = JSON.parse(readFileSync(file, 'utf8')) as StateData;
    if (after.nextTaskSeq !== TASKS + 1 + WRITES + 2) /* + the warm-up write and the migrating first write */ throw new Error(`writes were lost: nextTaskSeq ${after.nextTaskSeq}`);

    const sweep = [];
    for (const n of SWEEP) sweep.push(await writeSweep(n));
    const frames = { many: await tableFrames(state), one: await tableFrames(buildState(w.dataDir, 2, 0)) };

    const startP50 = pct(startMs, 50);
    const startMax = Math.max(...startMs);
    const wP95 = pct(writeMs, 95);
    const result = {
      bench: 'state',
      machine: { ...machine(), loadavg1Start: load0.loadavg1 },
      clusters: CLUSTERS,
      tasks: TASKS,
      audit: AUDIT,
      stateBytes: bytes,
      start: {
        reps: START_REPS,
        migrateToJournalMs: fmt(migrateMs),
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
        floorFsyncedWriteMs: { p50: fmt(pct(floorMs, 50)), p95: fmt(pct(floorMs, 95)) },
        ratioP95: fmt(wP95 / pct(floorMs, 95), 2),
        referenceWriteFileSyncNoFsyncMs: { p50: fmt(pct(plainMs, 50)), p95: fmt(pct(plainMs, 95)) },
        loopDelayDuringWrites: loop.result(),
        targetMs: 20,
        pass: wP95 <= 20,
      },
      writeSweep: sweep,
      tableFrame: {
        clusters: CLUSTERS,
        frames: FRAMES,
        keyFrameMs: { p50: fmt(pct(frames.many.key, 50)), p95: fmt(pct(frames.many.key, 95)), max: fmt(Math.max(...frames.many.key)) },
        relayoutMs: { note: 'resizes back to back: each waits for the 16 ms reflow frame gap after the previous one', p50: fmt(pct(frames.many.full, 50)), p95: fmt(pct(frames.many.full, 95)) },
        loneRelayoutMs: { note: 'a resize more than the frame gap after the last reflow: drawn at once, the relayout itself', p50: fmt(pct(frames.many.lone, 50)), p95: fmt(pct(frames.many.lone, 95)), max: fmt(Math.max(...frames.many.lone)) },
        baselineTwoClustersLoneRelayoutMs: { p95: fmt(pct(frames.one.lone, 95)) },
        baselineTwoClustersKeyFrameMs: { p50: fmt(pct(frames.one.key, 50)), p95: fmt(pct(frames.one.key, 95)) },
        baselineTwoClustersRelayoutMs: { p95: fmt(pct(frames.one.full, 95)) },
        ratioKeyP95: fmt(pct(frames.many.key, 95) / pct(frames.one.key, 95), 2),
        targetMs: 16,
        pass: pct(frames.many.key, 95) <= 16 && pct(frames.many.lone, 95) <= 16,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.stderr.write(table(`state (${CLUSTERS} clusters, ${TASKS} tasks, ${AUDIT} audit events, ${(bytes / 1e6).toFixed(1)} MB; load ${load0.loadavg1} → ${result.machine.loadavg1})`, [
      ['metric', 'kindler', 'baseline', 'ratio', 'target', 'pass'],
      ['Engine.start p50 / max (ms)', `${fmt(startP50)} / ${fmt(startMax)}`, fmt(pct(parseMs, 50)), String(result.start.ratioStartP50), '≤ 1000', String(result.start.pass)],
      ['Store.open p50 (ms)', fmt(pct(openMs, 50)), fmt(pct(parseMs, 50)), String(result.start.ratioOpenP50), '', ''],
      ['state write p50 (ms)', fmt(pct(writeMs, 50)), `${fmt(pct(floorMs, 50))} fsynced floor`, '-', '', ''],
      ['state write p95 (ms)', fmt(wP95), `${fmt(pct(floorMs, 95))} fsynced floor`, String(result.write.ratioP95), '≤ 20', String(result.write.pass)],
      ['  writeFileSync, no fsync p95 (ms)', '-', fmt(pct(plainMs, 95)), '', '', ''],
      ['  event-loop delay during writes max / p99 (ms)', `${result.write.loopDelayDuringWrites.maxMs} / ${result.write.loopDelayDuringWrites.p99Ms}`, '', '', '', ''],
      ...sweep.map((r) => [`write p95, ${r.tasks} tasks, ${(r.bytes / 1e6).toFixed(1)} MB (ms)`, r.updateMs.p95, `${r.floorMs.p95} floor`, String(r.ratioP95), '≤ 20', String(r.updateMs.p95 <= 20)]),
      [`table key frame p95, ${CLUSTERS} clusters (ms)`, fmt(pct(frames.many.key, 95)), `${fmt(pct(frames.one.key, 95))} (2 clusters)`, String(result.tableFrame.ratioKeyP95), '≤ 16', String(pct(frames.many.key, 95) <= 16)],
      [`table lone relayout p95, ${CLUSTERS} clusters (ms)`, fmt(pct(frames.many.lone, 95)), `${fmt(pct(frames.one.lone, 95))} (2 clusters)`, fmt(pct(frames.many.lone, 95) / pct(frames.one.lone, 95), 2), '≤ 16', String(pct(frames.many.lone, 95) <= 16)],
      [`  back-to-back resizes p95 (incl. 16 ms frame gap)`, fmt(pct(frames.many.full, 95)), `${fmt(pct(frames.one.full, 95))} (2 clusters)`, fmt(pct(frames.many.full, 95) / pct(frames.one.full, 95), 2), '-', ''],
    ]));
  } finally {
    w.cleanup();
  }
}

await runBench(fileURLToPath(import.meta.url), main);

/**
 * Orchestration benchmark.
 *
 * 1. Overhead: serial creates against an "instant" stand-in provider (tiny bash scripts that only
 *    print the marker protocol). For each create, kindler's wall time (engine.create → task
 *    terminal) minus the wall time of the same script run directly with child_process, interleaved
 *    in the same run. Target: p95 overhead ≤ 150 ms.
 * 2. Concurrency: 20 creates at concurrency 4 against a stand-in that sleeps 1 s. Wall time vs the
 *    ideal 20/4 × 1 s = 5 s (target ≤ 1.1×), and vs the same 20 scripts run directly 4 at a time.
 *
 * Prints one JSON object to stdout and a short table to stderr.
 * Run: node --import tsx bench/orchestration.ts   (env BENCH_CREATES=N changes the serial count)
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../src/engine/engine.js';
import { ALICE, makeWorld, scriptEnv, type World } from '../test/helpers.js';
import { standinCluster, STANDIN_CREATE_RESULT, writeStandinScripts } from '../test/fixtures/standin.js';
import { fmt, pct, table } from './util.js';

const SERIAL = Number(process.env.BENCH_CREATES ?? 30);
const PARALLEL = 20;
const CONCURRENCY = 4;
const DELAY_S = 1;
const IDEAL_MS = (PARALLEL / CONCURRENCY) * DELAY_S * 1000;

// ---- stand-in provider scripts -------------------------------------------------------------------

const DELAY = `if [ "\${BENCH_DELAY:-0}" = 1 ]; then sleep ${DELAY_S}; fi\n`;

const CREATE = `printf '::kindler:step 1/3 preflight Checking tools\\n'
printf '::kindler:step 2/3 create Creating cluster %s\\n' "$name"
${DELAY}printf '::kindler:step 3/3 kubeconfig Writing kubeconfig\\n'
${STANDIN_CREATE_RESULT}`;

const makeScriptsDir = () => writeStandinScripts('kindler-bench-scripts-', CREATE, standinCluster(DELAY.trim()));

/** Runs a stand-in script directly (as the engine does: `bash SCRIPT ARGS`), returns wall ms. */
function runDirect(script: string, args: string[], env: Record<string, string>, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn('bash', [script, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.resume();
    p.on('error', reject);
    p.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0 || !out.includes('::kindler:result')) reject(new Error(`direct run of ${script} failed (exit ${code}): ${out}`));
      else resolve(ms);
    });
  });
}

function createArgs(w: World, name: string): string[] {
  return ['--name', name, '--provider', 'k3d', '--servers', '1', '--agents', '0', '--http-port', '20001', '--https-port', '20002', '--api-port', '20003',
    '--kubeconfig', join(w.dataDir, 'kubeconfig', `${name}.yaml`), '--wait-timeout', '30'];
}

const WIDE_PORTS = { http: { from: 21000, to: 21999 }, https: { from: 22000, to: 22999 }, api: { from: 23000, to: 23999 } };

async function withEngine<T>(scriptsDir: string, delay: boolean, concurrency: number, fn: (e: Engine, w: World, env: Record<string, string>) => Promise<T>): Promise<T> {
  const w = makeWorld({ scriptsDir, checkHostPorts: false, concurrency, ports: WIDE_PORTS });
  const env = { ...scriptEnv(w), ...(delay ? { BENCH_DELAY: '1' } : {}) };
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: env });
  try {
    return await fn(engine, w, env);
  } finally {
    await engine.shutdown();
    w.cleanup();
  }
}

async function createAndWait(engine: Engine, name: string): Promise<{ wallMs: number; taskMs: number; state: string }> {
  const t0 = performance.now();
  const queued = await engine.create({ name, provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const done = await engine.waitForTask(queued.id);
  const wallMs = performance.now() - t0;
  const taskMs = done.finishedAt ? Date.parse(done.finishedAt) - Date.parse(done.createdAt) : NaN;
  return { wallMs, taskMs, state: done.state };
}

async function main(): Promise<void> {
  const scriptsDir = makeScriptsDir();
  try {
    // ---- 1. overhead with an instant provider ----
    const serial = await withEngine(scriptsDir, false, 2, async (engine, w, env) => {
      const createScript = join(scriptsDir, 'create_env.sh');
      // warm-up (first spawn, first write, JIT), not counted
      await createAndWait(engine, 'warm');
      await runDirect(createScript, createArgs(w, 'warm'), env, scriptsDir);
      const kindler: number[] = [];
      const task: number[] = [];
      const direct: number[] = [];
      const overhead: number[] = [];
      let failures = 0;
      for (let i = 0; i < SERIAL; i++) {
        const name = `b${i}`;
        const d = await runDirect(createScript, createArgs(w, name), env, scriptsDir);
        const r = await createAndWait(engine, name);
        if (r.state !== 'succeeded') failures++;
        kindler.push(r.wallMs);
        task.push(r.taskMs);
        direct.push(d);
        overhead.push(r.wallMs - d);
      }
      return { kindler, task, direct, overhead, failures };
    });

    // ---- 2. concurrency with a 1 s provider ----
    const parallel = await withEngine(scriptsDir, true, CONCURRENCY, async (engine, w, env) => {
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => createAndWait(engine, `p${i}`)));
      const wallMs = performance.now() - t0;
      const failures = results.filter((r) => r.state !== 'succeeded').length;
      // baseline: the same 20 scripts run directly, 4 at a time
      const createScript = join(scriptsDir, 'create_env.sh');
      let next = 0;
      const b0 = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < PARALLEL) {
          const i = next++;
          await runDirect(createScript, createArgs(w, `q${i}`), env, scriptsDir);
        }
      }));
      const directMs = performance.now() - b0;
      return { wallMs, directMs, failures };
    });

    const ovP50 = pct(serial.overhead, 50);
    const ovP95 = pct(serial.overhead, 95);
    const result = {
      bench: 'orchestration',
      overhead: {
        creates: SERIAL,
        failures: serial.failures,
        kindlerMs: { p50: fmt(pct(serial.kindler, 50)), p95: fmt(pct(serial.kindler, 95)) },
        taskRecordMs: { p50: fmt(pct(serial.task, 50)), p95: fmt(pct(serial.task, 95)) },
        baselineScriptMs: { p50: fmt(pct(serial.direct, 50)), p95: fmt(pct(serial.direct, 95)) },
        overheadMs: { p50: fmt(ovP50), p95: fmt(ovP95) },
        ratioP50: fmt(pct(serial.kindler, 50) / pct(serial.direct, 50), 2),
        targetMs: 150,
        pass: ovP95 <= 150 && serial.failures === 0,
      },
      concurrency: {
        creates: PARALLEL,
        concurrency: CONCURRENCY,
        providerDelayS: DELAY_S,
        failures: parallel.failures,
        kindlerWallMs: fmt(parallel.wallMs),
        idealMs: IDEAL_MS,
        baselineDirectMs: fmt(parallel.directMs),
        ratioVsIdeal: fmt(parallel.wallMs / IDEAL_MS, 3),
        ratioVsBaseline: fmt(parallel.wallMs / parallel.directMs, 3),
        target: 1.1,
        pass: parallel.wallMs / IDEAL_MS <= 1.1 && parallel.failures === 0,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.stderr.write(table('orchestration', [
      ['metric', 'kindler', 'baseline', 'ratio', 'target', 'pass'],
      ['create overhead p50 (ms)', fmt(ovP50), '-', '-', '', ''],
      ['create overhead p95 (ms)', fmt(ovP95), '-', '-', '≤ 150', String(result.overhead.pass)],
      ['create wall p50 (ms)', fmt(pct(serial.kindler, 50)), fmt(pct(serial.direct, 50)), String(result.overhead.ratioP50), '', ''],
      [`${PARALLEL}×create @${CONCURRENCY}, 1 s (ms)`, fmt(parallel.wallMs), `${IDEAL_MS} ideal`, String(result.concurrency.ratioVsIdeal), '≤ 1.1×', String(result.concurrency.pass)],
      ['  vs direct scripts @4 (ms)', fmt(parallel.wallMs), fmt(parallel.directMs), String(result.concurrency.ratioVsBaseline), '', ''],
    ]));
  } finally {
    rmSync(scriptsDir, { recursive: true, force: true });
  }
}

await main();

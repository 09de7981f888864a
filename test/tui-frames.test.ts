/**
 * Shared frames against the ground truth: the same script of events, keys, window changes and a
 * Ctrl-L, played on four sessions twice — once with every session rendering by itself, once with
 * frames shared (a session may take another's bytes, let go of its cell grids, reflow without them
 * and later render from a snapshot). Every terminal must show the same cells, with the same
 * attributes, after every step of both runs. Sessions run in-process on headless terminals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import xterm from '@xterm/headless';
import type { Task } from '../src/core/types.js';
import { cluster, FakeBackend as Backend } from './tui-fakes.js';

// This test is the check of the shared path itself: rendering every shared frame again (the
// verification mode npm test turns on for the other suites) would never let a session go without its grids.
delete process.env.KINDLER_TUI_VERIFY_FRAMES;
const { TuiApp } = await import('../src/tui/app.js');
const { sharedFrames, spareCells } = await import('../src/tui/frames.js');

const { Terminal } = xterm;

function queued(id: string, name: string): Task {
  return {
    id,
    kind: 'create',
    cluster: name,
    user: 'alice',
    state: 'queued',
    progress: 0,
    steps: [],
    createdAt: '2026-01-01T00:00:00.000Z',
    notes: [],
    logLines: 0,
  };
}

/** One session: a TuiApp whose output feeds a headless terminal. */
function open(backend: Backend, cols: number, rows: number) {
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: () => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  const term = new Terminal({ cols, rows, allowProposedApi: true });
  let parsing = Promise.resolve();
  output.on('data', (d: Buffer) => {
    parsing = parsing.then(() => new Promise<void>((r) => term.write(d, r)));
  });
  const app = new TuiApp({ input: input as never, output: output as never, columns: cols, rows, backend, onExit: () => undefined });
  return {
    app,
    key: (s: string) => void input.write(s),
    resize(c: number, r: number) {
      term.resize(c, r);
      app.resize(c, r);
    },
    /** The visible cells: each row's text, then a row of attribute codes (inverse, bold, colour). */
    async cells(): Promise<string> {
      await parsing;
      const b = term.buffer.active;
      const out: string[] = [];
      for (let y = 0; y < term.rows; y++) {
        const line = b.getLine(b.viewportY + y);
        let attrs = '';
        for (let x = 0; x < term.cols; x++) {
          const c = line?.getCell(x);
          attrs += c ? `${c.isInverse() ? 'i' : ''}${c.isBold() ? 'b' : ''}${c.getFgColor()}/${c.getBgColor()},` : '-,';
        }
        out.push(line?.translateToString(true) ?? '', attrs);
      }
      return out.join('\n');
    },
    close() {
      app.close();
      term.dispose();
    },
  };
}

/** Resolves after pending I/O callbacks (keys delivered) and setImmediate callbacks have run. */
const turn = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

/** Plays the script; returns every session's cells after every step. */
async function play(shared: boolean): Promise<{ steps: string[][]; hits: number }> {
  sharedFrames.clear();
  sharedFrames.enabled = shared;
  const hits0 = sharedFrames.stats.hits;
  const backend = new Backend([cluster('alpha'), cluster('beta')]);
  const s = [open(backend, 100, 30), open(backend, 100, 30), open(backend, 100, 30), open(backend, 100, 30)];
  const steps: string[][] = [];
  const settle = async () => {
    await turn();
    // Frames put off by the render scheduler (reflow gap, budget) are drawn here, in session order.
    for (const x of s) x.app.flush();
    steps.push(await Promise.all(s.map((x) => x.cells())));
  };
  try {
    await turn();
    await settle();
    backend.push({ type: 'cluster', cluster: cluster('gamma', { owner: 'bob' }) });
    await settle();
    s[0]!.resize(120, 40);
    s[1]!.resize(120, 40);
    s[2]!.resize(80, 24);
    s[3]!.resize(80, 24);
    await settle();
    s[1]!.key('j');
    await settle();
    for (const x of s) x.resize(100, 30);
    await settle();
    backend.push({ type: 'task', task: queued('t-1', 'alpha') });
    await settle();
    s[2]!.key('jj');
    s[3]!.key('j');
    await settle();
    s[0]!.resize(84, 26);
    s[1]!.resize(84, 26);
    await settle();
    backend.push({ type: 'cluster', cluster: cluster('alpha', { actual: 'stopped', desired: 'stopped' }) });
    await settle();
    for (const x of s) x.resize(130, 45);
    await settle();
    s[0]!.key('\x0c');
    s[3]!.key('k');
    await settle();
    for (const x of s) x.resize(96, 28);
    await settle();
    // Everyone opens the help (one render, three shared frames); one closes it by itself: it renders
    // from the snapshot it kept, and every cell the dialog covered must be cleared on its terminal.
    for (const x of s) x.key('?');
    await settle();
    s[3]!.key('q');
    await settle();
    for (const x of s.slice(0, 3)) x.key('q');
    await settle();
    // A session on shared frames reflows alone (no grids, nobody to share with) and renders by itself.
    s[2]!.resize(90, 26);
    await settle();
    backend.push({ type: 'cluster', cluster: cluster('delta') });
    await settle();
    return { steps, hits: sharedFrames.stats.hits - hits0 };
  } finally {
    for (const x of s) x.close();
    sharedFrames.enabled = true;
  }
}

test('shared frames, dropped grids and reflows without them show exactly what sessions rendering by themselves show', async () => {
  const truth = await play(false);
  assert.equal(truth.hits, 0, 'the ground truth took shared frames');
  const got = await play(true);
  assert.ok(got.hits >= 10, `only ${got.hits} shared frames were taken: the test proves little`);
  assert.equal(got.steps.length, truth.steps.length);
  for (let i = 0; i < truth.steps.length; i++)
    for (let n = 0; n < 4; n++)
      assert.equal(got.steps[i]![n], truth.steps[i]![n], `step ${i}, session ${n}: the screen differs from the one rendered by itself`);
  // The grids they let go of went to the spares (bounded), for the next grid to take.
  assert.ok(spareCells() > 0 && spareCells() <= 2 * 2 * 300 * 120, `spare cells: ${spareCells()}`);
});

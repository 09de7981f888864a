/**
 * What a TUI frame costs: regression tests for the render path that 100 sessions share (one
 * compiled terminfo, one draw per change, the first frame already complete, each frame's bytes
 * sent when it is drawn, rows computed once per record). Driven directly on a TTY-looking stream
 * pair with a fake backend; no sleeps: the checks run right after the synchronous calls they test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import type { Cluster, Task } from '../src/core/types.js';
import { TuiApp } from '../src/tui/app.js';
import { cachedClusterRow, clusterColumns, clusterRow } from '../src/tui/model.js';
import { sharedTerminfoCount } from '../src/tui/terminfo.js';
import { cluster, FakeBackend as Backend } from './tui-fakes.js';

function running(id: string, name: string): Task {
  const at = new Date().toISOString();
  return { id, kind: 'create', cluster: name, user: 'alice', state: 'running', progress: 10, steps: [], createdAt: at, startedAt: at, notes: [], logLines: 0 };
}

interface Opened {
  app: TuiApp;
  backend: Backend;
  /** Every chunk written to the terminal, in order. */
  writes: string[];
  /** Resolves with the first write (past or future) that matches; rejects after `ms`. */
  waitWrite(pred: (chunk: string) => boolean, ms: number): Promise<string>;
  /** screen.render() calls so far. */
  renders(): number;
  close(): void;
}

/** Opens a TuiApp on a stream pair, counting writes and renders (no timers of its own). */
function open(clusters: Cluster[], cols = 100, rows = 30): Opened {
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: () => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  output.resume();
  const writes: string[] = [];
  const waiters = new Set<(chunk: string) => void>();
  const write = output.write.bind(output) as (c: unknown, ...a: unknown[]) => boolean;
  output.write = ((c: unknown, ...a: unknown[]) => {
    writes.push(String(c));
    for (const w of [...waiters]) w(String(c));
    return write(c, ...a);
  }) as typeof output.write;
  const waitWrite = (pred: (chunk: string) => boolean, ms: number) =>
    new Promise<string>((resolve, reject) => {
      const seen = writes.find(pred);
      if (seen !== undefined) return resolve(seen);
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching write within ${ms} ms; writes:\n${writes.join('\n---\n')}`));
      }, ms);
      const check = (chunk: string) => {
        if (!pred(chunk)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(chunk);
      };
      waiters.add(check);
    });
  const backend = new Backend(clusters);
  const app = new TuiApp({ input: input as never, output: output as never, columns: cols, rows, backend, onExit: () => undefined });
  let renders = 0;
  const render = app.screen.render.bind(app.screen);
  app.screen.render = () => {
    renders++;
    render();
  };
  return { app, backend, writes, waitWrite, renders: () => renders, close: () => app.close() };
}

/** Resolves after pending microtasks and one macrotask turn (setImmediate callbacks have run). */
const turn = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

test('the first frame already shows the snapshot, in one write, with no "connecting" frame before it', async (t) => {
  const s = open([cluster('alpha'), cluster('beta')]);
  t.after(() => s.close());
  const frame = await s.waitWrite((w) => w.includes('alpha'), 5000);
  assert.match(frame, /beta/);
  assert.ok(!s.writes.some((w) => w.includes('connecting') || w.includes('loading')), 'a frame before the snapshot was drawn');
  assert.equal(s.renders(), 1);
});

test('a frame is written to the terminal when flush returns (not on a later setImmediate)', async (t) => {
  const s = open([cluster('alpha')]);
  t.after(() => s.close());
  await turn();
  s.backend.push({ type: 'cluster', cluster: cluster('gamma') });
  const before = s.writes.length;
  s.app.flush();
  assert.ok(
    s.writes.slice(before).some((w) => w.includes('gamma')),
    'the new row was not written synchronously',
  );
});

test('a layout change draws the screen once (labelled panels do not re-render it on resize)', async (t) => {
  const s = open([cluster('alpha'), cluster('beta')]);
  t.after(() => s.close());
  await turn();
  const layout = s.app.layoutKey;
  const r0 = s.renders();
  // Two running tasks grow the tasks band: every panel moves or resizes.
  s.backend.push({ type: 'task', task: running('t-1', 'alpha') });
  s.backend.push({ type: 'task', task: running('t-2', 'beta') });
  s.app.flush();
  assert.notEqual(s.app.layoutKey, layout, 'the layout did not change; the test proves nothing');
  await turn();
  assert.equal(s.renders() - r0, 1);
});

test('every screen shares one compiled terminfo', async (t) => {
  const a = open([cluster('alpha')]);
  const b = open([cluster('beta')]);
  t.after(() => {
    a.close();
    b.close();
  });
  const info = (x: Opened) => (x.app.screen.program as unknown as { tput: { info: unknown } }).tput.info;
  assert.ok(info(a));
  assert.equal(info(a), info(b));
  assert.equal(sharedTerminfoCount(), 1);
});

test('the table keeps the selected row in view and draws only the rows that fit', async (t) => {
  const names = Array.from({ length: 40 }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const s = open(
    names.map((n) => cluster(n)),
    80,
    24,
  );
  t.after(() => s.close());
  await turn();
  // A pick draws at once, unless the session is over its render budget (a loaded machine): then the
  // frame comes as soon as the budget allows. Wait for it, with a deadline.
  const frameShowing = async (re: RegExp, what: string) => {
    const end = Date.now() + 5000;
    while (!re.test(s.app.table.frame.getContent())) {
      if (Date.now() > end) assert.fail(`the table never showed ${what}:\n${s.app.table.frame.getContent()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return s.app.table.frame.getContent();
  };
  s.app.pickCluster(39);
  const shown = await frameShowing(/c39/, 'c39');
  assert.ok(!shown.includes('c00'), 'rows above the view are still drawn');
  assert.ok(shown.split('\n').length <= s.app.table.pageSize + 1, 'more rows than fit were drawn');
  s.app.pickCluster(0);
  await frameShowing(/c00/, 'c00 after picking it');
});

test('a cached row is the row, and follows the clock-dependent cells', () => {
  const cols = clusterColumns(100);
  const now = Date.parse('2026-01-01T00:00:00Z');
  const c = cluster('ttl', { expiresAt: '2026-01-01T02:00:00.000Z' });
  assert.equal(cachedClusterRow(c, cols, now), clusterRow(c, cols, now));
  const later = now + 90 * 60_000;
  assert.notEqual(clusterRow(c, cols, later), clusterRow(c, cols, now));
  assert.equal(cachedClusterRow(c, cols, later), clusterRow(c, cols, later));
  const narrow = clusterColumns(60);
  assert.equal(cachedClusterRow(c, narrow, now), clusterRow(c, narrow, now));
});

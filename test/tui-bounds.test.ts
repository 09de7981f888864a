/**
 * What one TUI session may cost (issue 13, item 1): its size is capped, a burst of resizes is one
 * reflow, and its frames stay within a render budget. Driven directly on a TTY-looking stream pair
 * with a fake backend, and the scheduler on a fake clock; no sleeps.
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { PassThrough } from 'node:stream';
import { TuiApp } from '../src/tui/app.js';
import { capSize, MAX_SIZE } from '../src/tui/layout.js';
import { RENDER_BUDGET, RenderScheduler } from '../src/tui/scheduler.js';
import { cluster, FakeBackend } from './tui-fakes.js';

/** A TuiApp on a stream pair; `clears` counts the terminal clears blessed sends on a reflow. */
function open(t: { after(fn: () => void): void }, cols: number, rows: number, extra: Partial<ConstructorParameters<typeof TuiApp>[0]> = {}) {
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: () => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  let bytes = '';
  output.on('data', (d: Buffer) => (bytes += d.toString('latin1')));
  const app = new TuiApp({
    input: input as never,
    output: output as never,
    columns: cols,
    rows,
    backend: new FakeBackend([cluster('alpha'), cluster('beta')]),
    onExit: () => undefined,
    ...extra,
  });
  t.after(() => app.close());
  return { app, output, clears: () => bytes.split('\x1b[2J').length - 1 };
}

/** Resolves once no frame is scheduled any more (the coalescing gap is 50 ms); deadline 5 s. */
async function settled(app: TuiApp): Promise<void> {
  const end = Date.now() + 5000;
  do {
    await new Promise((r) => setTimeout(r, 10));
    if (Date.now() > end) throw new Error('a frame was still scheduled after 5 s');
  } while (app.scheduler.pending);
}

test('sizes are capped at 300x120 (whole cells, at least 1; junk falls back to 80x24)', () => {
  assert.deepEqual(MAX_SIZE, { cols: 300, rows: 120 });
  assert.deepEqual(capSize(1000, 1000), { cols: 300, rows: 120 });
  assert.deepEqual(capSize(120.7, 40.2), { cols: 120, rows: 40 });
  assert.deepEqual(capSize(0, Number.NaN), { cols: 80, rows: 24 });
  assert.deepEqual(capSize(500, 50, { cols: 200, rows: 60 }), { cols: 200, rows: 50 });
});

test('a 1000x1000 terminal gets a 300x120 screen; resize() to a huge size stays at the cap', async (t) => {
  const s = open(t, 1000, 1000);
  await settled(s.app);
  assert.equal(s.app.screen.width, 300);
  assert.equal(s.app.screen.height, 120);
  assert.equal(s.output.columns, 300);
  s.app.resize(5000, 3000);
  await settled(s.app);
  assert.equal(s.app.screen.width, 300);
  assert.equal(s.app.reflows, 0, 'the same capped size: no reflow');
  const small = open(t, 100, 30, { maxSize: { cols: 90, rows: 25 } });
  await settled(small.app);
  assert.deepEqual([small.app.screen.width, small.app.screen.height], [90, 25]);
});

test('a lone resize() is drawn at once; 20 more right after it make one more reflow, to the last size', async (t) => {
  const s = open(t, 120, 40);
  await settled(s.app);
  const clears = s.clears();
  s.app.resize(110, 35);
  assert.equal(s.app.reflows, 1, 'drawn synchronously');
  assert.deepEqual([s.app.screen.width, s.app.screen.height], [110, 35]);
  for (let i = 20; i >= 1; i--) s.app.resize(100 + i, 30 + (i % 5));
  s.app.resize(100, 30);
  // (Only if the machine took longer than the 16 ms reflow gap for all that can one of them be drawn at once.)
  const inGap = Date.now() - s.app.lastReflowAt < 16;
  if (inGap) assert.equal(s.app.reflows, 1, 'the burst waits for the next frame');
  await settled(s.app);
  const reflows: number = s.app.reflows;
  assert.ok(inGap ? reflows === 2 : reflows <= 3, `${reflows} reflows`);
  assert.equal(s.clears() - clears, s.app.reflows);
  assert.deepEqual([s.app.screen.width, s.app.screen.height], [100, 30]);
});

test('a burst that ends at the size on screen redraws nothing', async (t) => {
  const s = open(t, 120, 40);
  await settled(s.app);
  s.app.resize(110, 35);
  for (let i = 0; i < 5; i++) s.app.resize(90 + i, 30);
  const inGap = Date.now() - s.app.lastReflowAt < 16;
  s.app.resize(110, 35);
  await settled(s.app);
  if (inGap) assert.equal(s.app.reflows, 1);
  assert.deepEqual([s.app.screen.width, s.app.screen.height], [110, 35]);
});

test('render budget: costly frames are put off to stay within budget; cheap key frames run at once', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  try {
    let clock = 0;
    let cost = 30;
    let frames = 0;
    const r = new RenderScheduler(
      () => {
        frames++;
        clock += cost; // the frame "takes" `cost` ms
      },
      50,
      { ms: 100, perMs: 1000 },
      () => clock,
      () => clock,
      Infinity,
    );
    const advance = (ms: number) => {
      for (let i = 0; i < ms; i++) {
        clock++;
        mock.timers.tick(1);
      }
    };
    // Keys at 30 ms per frame, 200 of them over 5 s (one every 25 ms).
    for (let i = 0; i < 200; i++) {
      r.now();
      advance(25);
    }
    // 100 ms per second of the clock (the frames' own time included), plus one burst of 100 ms
    // and one frame over it: about 20 frames, where 200 were asked for.
    assert.ok(frames * 30 <= (clock / 1000) * 100 + 100 + 30, `${frames} frames of 30 ms in ${clock} ms`);
    assert.ok(frames >= 15, `only ${frames} frames`);
    assert.ok(r.stats.deferred > 0);
    // Deferred, never dropped: once the keys stop, a frame still owed is drawn.
    const before = frames;
    const owed = r.pending;
    advance(2000);
    assert.equal(frames, before + (owed ? 1 : 0));
    assert.equal(r.pending, false);
    r.now();
    r.now();
    assert.equal(r.pending, false, 'under budget again: at once');

    // Cheap frames (a key's frame costs a millisecond or two) are never held back.
    cost = 1;
    advance(2000);
    const at = frames;
    for (let i = 0; i < 50; i++) {
      r.now();
      advance(20);
    }
    assert.equal(frames - at, 50);
    r.stop();
  } finally {
    mock.timers.reset();
  }
  assert.deepEqual(RENDER_BUDGET, { ms: 100, perMs: 1000 });
});

test('a session over its budget defers its reflows: a stream of resizes costs at most its budget', async (t) => {
  // A budget small enough that two reflows exceed it: the rest of the resizes wait, coalesced.
  const s = open(t, 120, 40, { renderBudget: { ms: 1, perMs: 60_000 } });
  await settled(s.app);
  const reflows = s.app.reflows;
  for (let i = 0; i < 10; i++) {
    s.app.resize(100 + i, 30);
    await new Promise((r) => setImmediate(r));
  }
  // Longer than the 50 ms frame gap: without the budget, the reflow would have run by now.
  await new Promise((r) => setTimeout(r, 150));
  assert.ok(s.app.reflows - reflows <= 2, `${s.app.reflows - reflows} reflows`);
  assert.ok(s.app.scheduler.pending, 'the latest size waits for the budget');
  assert.deepEqual(s.app.pendingSize, { cols: 109, rows: 30 });
});

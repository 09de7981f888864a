/**
 * Screen tests for issue 18 (the TUI as k9s and lazydocker users expect it), with the harness
 * ssh-tui.test.ts uses too (test/tui-harness.ts): a real daemon with SSH on, ssh2 clients with a pty feeding a headless xterm.
 * The headless terminal measures characters with Unicode 11 widths (as current terminals draw
 * emoji: 2 columns), not xterm.js's default Unicode 6 tables (1 column), so a screen that counts
 * an emoji as one column shows here as it does on a real terminal. Assertions read the visible
 * grid (text and cell attributes, never escape bytes); every wait is on screen text, with a deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import xterm from '@xterm/headless';
import { esc, slowCreateIn, sshTuiSuite, taskLine, type Key, type Tui } from './tui-harness.js';
import { cli, type World } from './helpers.js';
import { terminalSafe } from '../src/tui/text.js';
import { helpRows } from '../src/tui/keys.js';

const { Terminal } = xterm;

/** Who the local CLI acts as (the control socket's principal). */
const ME = userInfo().username;

let w: World;
const suite = sshTuiSuite({ unicode11: true, daemonLog: true, ready: (s) => ({ w } = s) });
const { admin, oper, key, exec, connectTui } = suite;

// ---- the harness (test/tui-harness.ts) and the helpers on it ---------------------------------

/** Opens a session that is always closed after the test, and waits for its first full frame. */
async function open(t: { after(fn: () => unknown): void }, k: Key, label: string, cols = 120, rows = 40, command?: string, fresh = true): Promise<Tui> {
  const s = await connectTui(k, label, cols, rows, command);
  t.after(() => s.close());
  // A session opens on the view its key's last session left (filter, focus, …): `clusters 1/9 · …`.
  // Unless `fresh` is false, it goes back to the default view (:reset) before the test goes on.
  await s.waitFor((x) => /kindler │ .* │ \S+ \(\w+\) │/.test(x) && (!fresh || / log /.test(x)) && (fresh || / clusters (?:\(\d+\)|\d+\/\d+ )/.test(x)), 15_000);
  if (fresh) {
    s.send(':reset\r');
    await s.waitFor((x) => x.includes('view reset:') && / clusters \(\d+\)/.test(x), 15_000);
  }
  return s;
}

/** Shows only clusters whose fields contain `name` (so the log pane follows that cluster). */
async function filterTo(s: Tui, name: string): Promise<void> {
  s.send(`/\x15${name}`); // Ctrl-U: the prompt starts with the current filter
  await s.waitFor(`filter: ${name}`);
  s.send('\r');
  await s.waitFor((x) => !x.includes('filter clusters:') && x.includes(`filter: ${name}`));
}

/** Creates a cluster from the local CLI whose create step takes `seconds`; returns the task id. */
const slowCreate = (t: { after(fn: () => unknown): void }, name: string, seconds: number) => slowCreateIn(w, t, name, seconds);

// ---- cases ------------------------------------------------------------------------------------
/** Left and right border characters of a bordered row (panel or dialog). */
const LEFT_EDGE = new Set(['│', '┌', '└', '├']);
const RIGHT_EDGE = new Set(['│', '┐', '┘', '┤']);

/**
 * Every row that starts with a panel border ends with one in the last column, no cell is wider than
 * the terminal grid allows, and the text is what blessed meant to draw (no leftovers of an earlier frame).
 */
function assertFramed(s: Tui, cols: number, rows: number, what: string): void {
  const lines = s.lines();
  for (let y = 0; y < rows; y++) {
    const first = s.cell(0, y)?.chars ?? '';
    if (!LEFT_EDGE.has(first)) continue;
    const last = s.cell(cols - 1, y);
    assert.ok(
      last && RIGHT_EDGE.has(last.chars),
      `${what}: row ${y} does not end with its border in column ${cols}: ${JSON.stringify(lines[y])}\n${lines.join('\n')}`,
    );
  }
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const c = s.cell(x, y)!;
      // Wide cells only for characters drawn as they are (CJK): emoji and sequences are placeholders.
      assert.ok(
        c.width !== 2 || terminalSafe(c.chars) === c.chars,
        `${what}: a wide cell ${JSON.stringify(c.chars)} at ${x},${y}: ${JSON.stringify(lines[y])}`,
      );
    }
  }
}

/** The rows inside the log pane's borders (its label row is the one holding ` log t-`). */
function logRows(s: Tui): string[] {
  const lines = s.lines();
  const top = lines.findIndex((l) => / log t-\d+/.test(l));
  const out: string[] = [];
  for (let y = top + 1; y < lines.length && !lines[y]!.startsWith('└'); y++) out.push(lines[y]!.replace(/^│/, '').replace(/│$/, '').trimEnd());
  return out;
}

test(
  '18.1 kind output with emoji: the log pane, full-screen log and back keep every border and leave nothing behind; Ctrl-L repaints',
  { timeout: 90_000 },
  async (t) => {
    const r = await cli(w, ['create', 'emoji1', '--provider', 'kind', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout).task.id as string;
    const disk = readFileSync(join(w.dataDir, 'logs', `${id}.log`), 'utf8')
      .trimEnd()
      .split('\n');
    // The real kind lines, emoji included, are in the task's log.
    assert.ok(
      disk.some((l) => l.includes('Preparing nodes 📦')),
      disk.join('\n'),
    );
    assert.ok(
      disk.some((l) => l.includes('Ensuring node image') && l.includes('🖼')),
      disk.join('\n'),
    );
    assert.ok(
      disk.some((l) => /[👋😊😅🙂]/u.test(l)),
      disk.join('\n'),
    );
    const s = await open(t, admin, 'admin');
    await filterTo(s, 'emoji1');
    await s.waitFor((x) => new RegExp(`log ${id} create emoji1 · succeeded`).test(x) && x.includes(`task ${id} succeeded`));
    assertFramed(s, 120, 40, 'panels');
    s.send('l');
    await s.waitFor((x) => !x.includes('NAME') && x.includes('Preparing nodes'));
    assertFramed(s, 120, 40, 'full-screen log');
    // Everything of the log fits: each row is exactly one log line, as sanitized for the terminal.
    const expected = new Set(disk.map((l) => terminalSafe(l).trimEnd()));
    for (const row of logRows(s))
      assert.ok(
        row === '' || expected.has(row) || (row.endsWith('…') && [...expected].some((l) => l.startsWith(row.slice(0, -1)))),
        `a log row that is no log line: ${JSON.stringify(row)}\n${s.screen()}`,
      );
    s.send('\x1b');
    await s.waitFor((x) => x.includes('NAME') && /emoji1\s+kind\s+present\s+running/.test(x));
    assertFramed(s, 120, 40, 'back to the panels');
    for (const row of logRows(s))
      assert.ok(row === '' || [...expected].some((l) => l.startsWith(row.replace(/…$/, ''))), `a stray log row: ${JSON.stringify(row)}\n${s.screen()}`);
    // The details dialog over it: framed too.
    s.send('\r');
    await s.waitFor('recent tasks:');
    assertFramed(s, 120, 40, 'details');
    s.send('\x1b');
    await s.waitFor((x) => !x.includes('recent tasks:'));
    assertFramed(s, 120, 40, 'details closed');
    // Ctrl-L: a full clear and repaint, the same screen after it.
    const before = s.screen();
    const clears = s.clears();
    s.send('\x0c');
    await s.waitFor((x) => s.clears() > clears && x.includes('NAME') && /emoji1\s+kind/.test(x), 5_000);
    assertFramed(s, 120, 40, 'after Ctrl-L');
    const same = (x: string[]) =>
      x
        .slice(1)
        .map((l) => l.trimEnd())
        .join('\n');
    assert.equal(same(s.lines()), same(before.split('\n')));
  },
);

test('18.2 the progress bar of the selected task row is not inverted', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  await slowCreate(t, 'barsel', 4);
  s.send('\t'); // focus the tasks panel: its first row is selected (reverse video)
  const screen = await s.waitFor((x) => (taskLine(x, 'barsel')?.pct ?? 0) > 0 && x.includes('█'), 15_000);
  const y = screen.split('\n').findIndex((l) => /t-\d+\s+create\s+barsel/.test(l));
  assert.ok(y > 0);
  let full = 0;
  let selected = 0;
  for (let x = 1; x < 119; x++) {
    const c = s.cell(x, y)!;
    if (c.chars === '█') {
      full++;
      assert.equal(c.inverse, false, `a filled bar cell at ${x} is in reverse video (drawn as a gap)`);
    } else if (c.chars === 't' && x < 3) selected += c.inverse ? 1 : 0;
  }
  assert.ok(full > 0, 'the bar has filled cells');
  assert.equal(selected, 1, 'the row itself is selected (reverse video)');
});

test('18.3 q and esc close help, details, audit, reconcile and the full-screen log; only q on the main view quits', { timeout: 60_000 }, async (t) => {
  assert.equal((await cli(w, ['create', 'qview', '--wait'])).code, 0);
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'qview');
  const main = (x: string) => x.includes('NAME') && /qview\s+k3d/.test(x) && !/this help|recent tasks:|audit \(newest last\)|─ reconcile ─/.test(x);
  for (const [open, shown] of [
    ['?', 'this help'],
    ['\r', 'recent tasks:'],
    [':audit\r', 'audit (newest last)'],
    ['r', '─ reconcile ─'],
    ['l', '· succeeded'],
  ] as const) {
    for (const close of ['q', '\x1b']) {
      s.send(open);
      await s.waitFor((x) => x.includes(shown) && (open !== 'l' || !x.includes('NAME')));
      s.send(close);
      await s.waitFor(main);
    }
  }
  let ended = false;
  void s.closed.then(() => (ended = true));
  assert.equal(ended, false, 'the session is still open');
  s.send('q');
  assert.equal((await s.closed).code, 0);
});

test('18.3 Ctrl-C with input in a form asks first; n goes back to the form', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('half');
  await s.waitFor('half');
  s.send('\x03');
  await s.waitFor('The form has input that will be lost.');
  s.send('n');
  await s.waitFor((x) => x.includes('create a cluster') && x.includes('half') && !x.includes('will be lost'));
  s.send('\x03');
  await s.waitFor('will be lost');
  s.send('y');
  assert.equal((await s.closed).code, 0);
});

test(
  '18.4 s and x ask first, naming the target; delete of a cluster with an active task is refused with the key to cancel it',
  { timeout: 90_000 },
  async (t) => {
    assert.equal((await cli(w, ['create', 'conf1', '--wait'])).code, 0);
    const s = await open(t, admin, 'admin');
    await filterTo(s, 'conf1');
    await s.waitFor(/conf1\s+k3d\s+present\s+running/);
    s.send('s');
    await s.waitFor('Stop cluster conf1 (k3d, owner');
    s.send('n');
    await s.waitFor((x) => !x.includes('Stop cluster conf1'));
    assert.equal(JSON.parse((await cli(w, ['show', 'conf1', '--json'])).stdout).cluster.desired, 'present', 'no stop was asked for');
    // Another user's (the local CLI user's) create: x names it and whose it is.
    const id = await slowCreate(t, 'conf2', 6);
    await filterTo(s, 'conf2');
    await s.waitFor((x) => Boolean(taskLine(x, 'conf2')));
    s.send('x');
    await s.waitFor(`Cancel task ${id}: create of cluster conf2 (`);
    assert.match(s.screen(), new RegExp(`started by ${esc(ME.slice(0, 20))}`));
    s.send('\x1b');
    await s.waitFor((x) => !x.includes('Cancel task'));
    s.send('d');
    await s.waitFor(`cannot delete conf2: task ${id} (create, running) is still active; press x to cancel it first`);
    assert.ok(!s.screen().includes('Delete cluster conf2?'), 'no name prompt');
    assert.equal(JSON.parse((await cli(w, ['show', 'conf2', '--json'])).stdout).cluster.actual === 'creating' || true, true);
    s.send('x');
    await s.waitFor(`Cancel task ${id}`);
    s.send('y');
    await s.waitFor(new RegExp(`cancel ${id} \\(create conf2\\)`));
    await s.waitFor(new RegExp(`create conf2: task ${id} cancelled`), 30_000);
  },
);

test('18.5 ssh -t HOST -- --no-color: no cell is coloured, the selection keeps reverse video', { timeout: 60_000 }, async (t) => {
  assert.equal((await cli(w, ['create', 'nocolor', '--wait'])).code, 0);
  const s = await open(t, admin, 'admin', 120, 40, '--no-color');
  await filterTo(s, 'nocolor');
  await s.waitFor(/nocolor\s+k3d\s+present\s+running/);
  s.send('?');
  await s.waitFor('this help');
  const check = () => {
    let inverse = 0;
    for (let y = 0; y < 40; y++)
      for (let x = 0; x < 120; x++) {
        const c = s.cell(x, y)!;
        assert.equal(c.coloured, false, `cell ${x},${y} ${JSON.stringify(c.chars)} is coloured:\n${s.screen()}`);
        if (c.inverse) inverse++;
      }
    return inverse;
  };
  check();
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('this help'));
  assert.ok(check() > 10, 'the selected row is in reverse video');
  // A plain session of the same user does have colour (the check above can fail).
  const c = await open(t, admin, 'colour');
  let coloured = 0;
  for (let y = 0; y < 40; y++) for (let x = 0; x < 120; x++) if (c.cell(x, y)!.coloured) coloured++;
  assert.ok(coloured > 0);
});

test("18.7 a finished or failed task flashes in the status line: yours always, others' on what you look at", { timeout: 90_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  // Another user's create on the selected cluster: it succeeds while we look at it.
  await filterTo(s, 'flash1');
  const id1 = await slowCreate(t, 'flash1', 1);
  await s.waitFor(new RegExp(`✓ create flash1: task ${id1} succeeded \\(started by ${esc(ME.slice(0, 20))}`), 30_000);
  // Another user's create elsewhere: nothing said.
  w.rule('k3d.cluster-create', 'fail 1 boom');
  t.after(() => w.clearRule('k3d.cluster-create'));
  const other = await cli(w, ['create', 'flash2', '--wait']);
  assert.notEqual(other.code, 0);
  assert.ok(!s.screen().includes('flash2'), s.screen());
  // Our own create fails while we look elsewhere: said at once, with the reason.
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('flash3\r');
  await s.waitFor(/create flash3: task t-\d+ (queued|running)/);
  await filterTo(s, 'flash1');
  await s.waitFor(/✗ create flash3: task t-\d+ failed: /, 30_000);
  assert.ok(!/create flash3: task t-\d+ (queued|running)/.test(s.screen()), 'the stale message is gone');
});

test('18.12 the create form shows every problem at once, keeps its width, and has servers, image and subnet', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin', 100, 30);
  s.send('c');
  const form = await s.waitFor('create a cluster');
  for (const f of ['servers:', 'image:', 'subnet:']) assert.ok(form.includes(f), `the form has ${f}\n${form}`);
  const right = () => {
    const y = s.lines().findIndex((l) => l.includes('create a cluster'));
    return s.lines()[y]!.lastIndexOf('┐');
  };
  const width = right();
  s.send('Bad_Name');
  await s.waitFor('Bad_Name');
  s.send('\t\t9\t');
  s.send('x'.repeat(3));
  s.send('\t' + 'registry.example.com/some/very/long/image/path:v1');
  await s.waitFor('…');
  assert.equal(right(), width, 'the form keeps its width while typing');
  s.send('\r');
  const shown = await s.waitFor((x) => x.includes('servers: must be') && x.includes('agents: must be') && x.includes('name: '));
  assert.match(shown, /› name:/, 'the first broken field has the focus');
  assert.equal(right(), width);
  // Fixed, it creates.
  s.send('\x15formok\t\t\x15\t\x15\t\x15\r');
  await s.waitFor(/create formok: task t-\d+/, 15_000);
});

test('18 help fits 80x24: wrapped at word boundaries, every key listed (e : n/N g/G PgUp/PgDn Ctrl-L …)', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin', 80, 24);
  s.send('?');
  await s.waitFor('keys (1-');
  const seen: string[] = [];
  for (let page = 0; page < 10; page++) {
    const lines = s.lines();
    assertFramed(s, 80, 24, `help page ${page}`);
    const top = lines.findIndex((l) => l.includes('┌─ keys ('));
    const left = lines[top]!.indexOf('┌─ keys (');
    const right = lines[top]!.indexOf('┐', left);
    for (let y = top + 1; y < lines.length && lines[y]![left] === '│'; y++) {
      assert.equal(lines[y]![right], '│', `help row ${y} keeps its right border`);
      seen.push(lines[y]!.slice(left + 1, right).trimEnd());
    }
    const label = lines[top]!;
    const m = /\((\d+)-(\d+) of (\d+)\)/.exec(label);
    if (!m || m[2] === m[3]) break;
    s.send('\x1b[6~');
    await s.waitFor((x) => !x.includes(m[0]));
  }
  const text = seen.join('\n');
  for (const k of [
    '↑/↓ j/k',
    'PgUp/PgDn',
    'g/G',
    'enter',
    'c ',
    'd ',
    's ',
    'e ',
    'x ',
    'r ',
    ':',
    '/',
    'n / N',
    'S ',
    'f ',
    'l ',
    'tab / shift-tab',
    '?',
    'esc',
    'Ctrl-L',
    'q, Ctrl-C',
  ])
    assert.ok(
      seen.some((l) => l.startsWith(k)),
      `help lists ${k}:\n${text}`,
    );
  // Wrapped at word boundaries: every word of every description is on screen whole.
  const words = new Set(text.split(/\s+/));
  const flags = { canCreate: true, canAct: true, canCancel: true, canExtend: true, canReconcile: true, canAudit: true };
  for (const [, d] of helpRows(flags))
    for (const word of d.split(' ')) assert.ok(words.has(word), `the word ${JSON.stringify(word)} is cut or missing:\n${text}`);
});

test("18 states: a failed cluster's row has the ✗ symbol in red and its last error on the status line", { timeout: 60_000 }, async (t) => {
  w.rule('k3d.cluster-create', 'fail 1 boom-from-k3d');
  t.after(() => w.clearRule('k3d.cluster-create'));
  assert.notEqual((await cli(w, ['create', 'failst', '--wait'])).code, 0);
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'failst');
  const screen = await s.waitFor(/✗ failst\s+k3d\s+present\s+failed/);
  const y = screen.split('\n').findIndex((l) => /✗ failst/.test(l));
  const x = s.lines()[y]!.indexOf('✗');
  assert.equal(s.cell(x, y)!.coloured, true, 'the symbol is coloured');
  await s.waitFor(/✗ failst last error: \S/);
});

/**
 * `kindler-tui` in a local terminal (util-linux `script` gives it a pty), its output in a headless
 * xterm: returns a waiter on the screen, the cell reader, and a way to type and to wait for its exit.
 */
function localTui(t: { after(fn: () => unknown): void }, env: Record<string, string>, cols = 100, rows = 30) {
  const term = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 0 });
  const tui = join(process.cwd(), 'dist', 'tui-cli.js');
  const p = spawn('script', ['-qfec', `stty cols ${cols} rows ${rows}; exec ${process.execPath} ${tui}`, '/dev/null'], {
    env: { ...w.env, ...env },
    cwd: w.dir,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const waiters = new Set<() => void>();
  p.stdout.on('data', (b: Buffer) => term.write(b, () => [...waiters].forEach((f) => f())));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  t.after(async () => {
    if (p.exitCode === null) p.kill('SIGTERM');
    await exited;
    term.dispose();
  });
  const screen = () => Array.from({ length: rows }, (_, y) => term.buffer.active.getLine(y)?.translateToString(true) ?? '').join('\n');
  return {
    screen,
    exited,
    send: (s: string) => p.stdin.write(s),
    coloured: () => {
      let n = 0;
      for (let y = 0; y < rows; y++)
        for (let x = 0; x < cols; x++) {
          const c = term.buffer.active.getLine(y)?.getCell(x);
          if (c && (!c.isFgDefault() || !c.isBgDefault())) n++;
        }
      return n;
    },
    inverse: () => {
      let n = 0;
      for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) if (term.buffer.active.getLine(y)?.getCell(x)?.isInverse()) n++;
      return n;
    },
    waitFor: (what: string | RegExp, ms = 15_000) =>
      new Promise<string>((res, rej) => {
        const ok = () => (typeof what === 'string' ? screen().includes(what) : what.test(screen()));
        const check = () => {
          if (ok()) {
            waiters.delete(check);
            clearTimeout(timer);
            res(screen());
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`local kindler-tui: timed out waiting for ${what}; screen:\n${screen()}`));
        }, ms);
        waiters.add(check);
        check();
      }),
  };
}

for (const [what, env] of [
  ['NO_COLOR=1', { NO_COLOR: '1', TERM: 'xterm-256color' }],
  ['TERM=dumb', { TERM: 'dumb' }],
] as const) {
  test(`18.5 local kindler-tui with ${what}: no cell is coloured, the selection keeps reverse video`, { timeout: 60_000 }, async (t) => {
    const name = `local${what.startsWith('NO') ? 'nc' : 'dumb'}`;
    assert.equal((await cli(w, ['create', name, '--wait'])).code, 0);
    const s = localTui(t, env);
    await s.waitFor(/kindler │ .* │ \S+ \(admin\) │/);
    await s.waitFor(/clusters \(\d+\)/);
    await s.waitFor(new RegExp(`${name}\\s+k3d\\s+present\\s+running`));
    assert.equal(s.coloured(), 0, s.screen());
    assert.ok(s.inverse() > 10, 'the selected row is in reverse video');
    s.send('q');
    assert.equal(await s.exited, 0);
  });
}

test(
  '18.1 CJK, fullwidth, combining marks, ZWJ/flag/keycap sequences and variation selectors in a log: framed, nothing left behind',
  { timeout: 90_000 },
  async (t) => {
    const lines = [
      'cjk: 中文字幕 日本語 한국어 end',
      'fullwidth: ＡＢＣ ｶﾀｶﾅ end',
      'combining: e\u0301 a\u0308 n\u0303 x\u0301\u0302 end',
      'zwj: 👩\u200d👩\u200d👧 👨🏽\u200d💻 end',
      'flags and keycaps: 🇩🇪 1️⃣ #️⃣ end',
      'variation selectors: ⚠️ ❤️ ✔️ ☺\ufe0e end',
    ];
    w.rule('kind.create-cluster', `write stderr ${Buffer.from(lines.join('\n') + '\n').toString('base64')}\nonce`);
    t.after(() => w.clearRule('kind.create-cluster'));
    const r = await cli(w, ['create', 'wide1', '--provider', 'kind', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout).task.id as string;
    const disk = readFileSync(join(w.dataDir, 'logs', `${id}.log`), 'utf8');
    for (const l of lines) assert.ok(disk.includes(l), `the log has ${l}`);
    // Tall enough that the whole kind create log (its ingress step included) fits the full-screen log.
    const s = await open(t, admin, 'admin', 120, 60);
    await filterTo(s, 'wide1');
    s.send('l');
    await s.waitFor((x) => !x.includes('NAME') && x.includes('variation selectors') && x.includes(`task ${id} succeeded`));
    assertFramed(s, 120, 60, 'full-screen log');
    const rows = logRows(s);
    for (const l of lines) assert.ok(rows.includes(terminalSafe(l)), `row for ${l}: ${JSON.stringify(terminalSafe(l))}\n${s.screen()}`);
    // The kept characters are as typed: CJK and composed accents.
    assert.ok(rows.includes('cjk: 中文字幕 日本語 한국어 end'));
    assert.ok(rows.some((x) => x.startsWith('combining: é ä ñ x')));
    s.send('\x1b');
    await s.waitFor((x) => x.includes('NAME') && /wide1\s+kind/.test(x));
    assertFramed(s, 120, 60, 'back to the panels');
  },
);

// ---- issue 18: mine filter, sort keys, cluster view, log pane toggles, view restore, mouse ---------

/** The row of the grid holding `re` (-1 if none). */
function rowOf(s: Tui, re: RegExp): number {
  return s.lines().findIndex((l) => re.test(l));
}

/** Creates a cluster from the local CLI and waits for its create to end. */
async function made(name: string, k?: Key): Promise<void> {
  const r = k ? await exec(k, ['create', name, '--wait']) : await cli(w, ['create', name, '--wait']);
  assert.equal(r.code, 0, `create ${name}: ${'stderr' in r ? r.stderr : ''}`);
}

test('18 m toggles "mine": only your clusters, and the table title says so', { timeout: 90_000 }, async (t) => {
  await made('mineop', oper);
  await made('minecli');
  const s = await open(t, oper, 'olga');
  await filterTo(s, 'mine');
  await s.waitFor((x) => /mineop/.test(x) && /minecli/.test(x));
  s.send('m');
  await s.waitFor((x) => / clusters 1\/\d+ · mine · sort/.test(x) && /mineop/.test(x) && !/minecli/.test(x));
  s.send('m');
  await s.waitFor((x) => !/· mine ·/.test(x) && /minecli/.test(x));
});

test('18 shift+column letter sorts by that column with ↑/↓ in the header; again flips it; S still cycles', { timeout: 90_000 }, async (t) => {
  await made('sorta');
  await made('sortb', oper);
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'sort');
  await s.waitFor(/NAME↑/);
  const order = () => {
    const a = rowOf(s, /\bsorta\b/);
    const b = rowOf(s, /\bsortb\b/);
    return a >= 0 && b >= 0 ? (a < b ? 'ab' : 'ba') : '';
  };
  assert.equal(order(), 'ab');
  s.send('N');
  await s.waitFor((x) => /NAME↓/.test(x) && /sort: name↓/.test(x) && order() === 'ba');
  s.send('N');
  await s.waitFor((x) => /NAME↑/.test(x) && order() === 'ab');
  s.send('O');
  await s.waitFor((x) => /OWNER↑/.test(x) && /sort: owner↑/.test(x) && !/NAME↑/.test(x));
  s.send('O');
  await s.waitFor(/OWNER↓/);
  s.send('A');
  await s.waitFor(/ACTUAL↑/);
  s.send('P');
  await s.waitFor(/PRO↑/);
  s.send('E');
  await s.waitFor(/EXPIRE↑/);
  s.send('S'); // S cycles on from expires: provider, then created (no column: the title names it)
  await s.waitFor(/sort: provider↑/);
  s.send('S');
  await s.waitFor((x) => /sort: created↑/.test(x) && !/[↑↓] /.test(x.split('\n').find((l) => /NAME/.test(l) && /OWNER/.test(l)) ?? ''));
  s.send('N'); // back to name for the next sessions of this key
  await s.waitFor(/NAME↑/);
});

test('18 enter drills into a cluster: nodes with their state, ports, the kubeconfig command, recent tasks; esc back', { timeout: 90_000 }, async (t) => {
  await made('drill');
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'drill');
  await s.waitFor(/● drill/);
  s.send('\r');
  const v = await s.waitFor((x) => /k3d-drill-server-0\s+server\s+running/.test(x) && /recent tasks/.test(x));
  assert.match(v, /k3d-drill-serverlb\s+loadbalancer\s+running/);
  assert.match(v, /http \d+\s+https \d+\s+api \d+/);
  assert.match(v, /ssh \S+ kubeconfig drill > kindler-drill\.yaml/);
  assert.match(v, /as docker reports them now/, 'the node states are asked of the provider, not taken from the record');
  s.send('\x1b');
  await s.waitFor((x) => !/as docker reports them now/.test(x) && /● drill/.test(x));
  // A container stopped behind kindler's back shows as docker sees it, while the record still says running.
  execFileSync('docker', ['stop', 'k3d-drill-serverlb'], { env: w.env, stdio: 'ignore' });
  s.send('\r');
  const after = await s.waitFor((x) => /k3d-drill-serverlb\s+loadbalancer\s+exited/.test(x));
  assert.match(after, /k3d-drill-server-0\s+server\s+running/);
  assert.match(after, /the provider says degraded/);
  s.send('\x1b');
  await s.waitFor((x) => !/as docker reports them now/.test(x) && /● drill/.test(x));
});

test(
  "18 log pane: w wraps, t drops the tools' time stamps, levels are coloured, ==> bold; the title names the whole-log command",
  { timeout: 90_000 },
  async (t) => {
    const text = [
      'time="2026-01-02T03:04:05Z" level=warning msg="stamped warning"',
      'INFO[0007] plain info line',
      'level=error msg="an error line"',
      `long-${'y'.repeat(150)}-tailmark`,
      '',
    ].join('\n');
    w.rule('k3d.cluster-create', `write stdout ${Buffer.from(text).toString('base64')}`);
    t.after(() => w.clearRule('k3d.cluster-create'));
    await made('logfx');
    const s = await open(t, admin, 'admin', 120, 60);
    await filterTo(s, 'logfx');
    s.send('l'); // the full-screen log: the whole create log fits
    await s.waitFor((x) => /an error line/.test(x) && /whole log: ssh \S+ logs t-\d+ > file/.test(x));
    // Levels: the error line red, the warning yellow, a step line bold.
    const cellAt = (re: RegExp, sub: string) => {
      const y = rowOf(s, re);
      assert.ok(y >= 0, `no row ${re}:\n${s.screen()}`);
      return s.cell(s.lines()[y]!.indexOf(sub), y)!;
    };
    assert.equal(cellAt(/an error line/, 'level=error').fg, 1, 'error line red');
    assert.equal(cellAt(/stamped warning/, 'level=warning').fg, 3, 'warning line yellow');
    assert.equal(cellAt(/==> \[/, '==>').bold, true, 'step line bold');
    // Wrap: the long line's end appears on the next row.
    assert.ok(!s.screen().includes('tailmark'));
    s.send('w');
    await s.waitFor((x) => x.includes('tailmark') && / · wrap/.test(x));
    s.send('w');
    await s.waitFor((x) => !x.includes('tailmark'));
    // Stamps: time="…" and INFO[0007] go, the level stays.
    assert.match(s.screen(), /time="2026-01-02T03:04:05Z" level=warning/);
    s.send('t');
    await s.waitFor((x) => /│level=warning msg="stamped warning"/.test(x) && /│INFO plain info line/.test(x) && / · no stamps/.test(x));
    s.send('t');
    await s.waitFor(/INFO\[0007\] plain info line/);
    s.send('l');
    await s.waitFor(/ clusters /);
  },
);

test('18 reconnecting with the same key restores the cluster, focus, filter, sort, mine and log position and toggles', { timeout: 90_000 }, async (t) => {
  const rest = key('rest');
  const r = await exec(admin, ['users', 'add', 'rosa', '--role', 'operator', '--key', `"${rest.pub}"`]);
  assert.equal(r.code, 0, r.stderr);
  await made('resta', rest);
  await made('restb', rest);
  const s = await open(t, rest, 'rosa');
  await filterTo(s, 'rest');
  s.send('m');
  s.send('N'); // name ↓: restb first
  await s.waitFor((x) => /NAME↓/.test(x) && / · mine ·/.test(x));
  s.send('j'); // select resta (second row)
  await s.waitFor(/ log t-\d+ create resta/);
  s.send('w');
  s.send('\t\t'); // focus: tasks, then the log
  s.send('k'); // scroll up: paused
  await s.waitFor((x) => /create resta .* paused at \d+ · wrap/.test(x) && /search/.test(s.footer()));
  const paused = /paused at (\d+)/.exec(s.screen())![1];
  s.send('q');
  await s.closed;
  const again = await open(t, rest, 'rosa again', 120, 40, undefined, false);
  await again.waitFor(
    (x) =>
      /your last view is back/.test(x) &&
      /filter: rest/.test(x) &&
      / · mine ·/.test(x) &&
      /NAME↓/.test(x) &&
      new RegExp(`create resta .* paused at ${paused} · wrap`).test(x) &&
      /search/.test(again.footer()),
  );
  // Another key's session is not affected.
  const other = await open(t, oper, 'olga');
  await other.waitFor((x) => !/filter: rest/.test(x));
});

test('18 mouse over SSH: a click picks a row (its log is shown), the wheel moves the selection', { timeout: 90_000 }, async (t) => {
  await made('mousea');
  await made('mouseb');
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'mouse');
  await s.waitFor(/ log t-\d+ create mousea/);
  const y = rowOf(s, /mouseb/);
  const x = s.lines()[y]!.indexOf('mouseb');
  // Press and release in one packet, as an ssh client may send them.
  s.send(`\x1b[<0;${x + 1};${y + 1}M\x1b[<0;${x + 1};${y + 1}m`);
  await s.waitFor(/ log t-\d+ create mouseb/);
  s.send(`\x1b[<64;${x + 1};${y + 1}M`); // wheel up
  await s.waitFor(/ log t-\d+ create mousea/);
  s.send(`\x1b[<65;${x + 1};${y + 1}M`); // wheel down
  await s.waitFor(/ log t-\d+ create mouseb/);
});

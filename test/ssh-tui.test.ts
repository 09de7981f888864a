/**
 * End-to-end screen tests of the TUI over SSH: one real daemon process with SSH on, ssh2 clients
 * with a pty (xterm-256color) whose output feeds a headless xterm. Assertions read the visible text
 * grid (never raw bytes); every wait is on screen text or daemon output, with a deadline, and a
 * timeout dumps the whole screen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { esc, slowCreateIn, eventually, sshTuiSuite, taskLine, type Key, type Tui } from './tui-harness.js';
import { cli, poll, type Daemon, type World } from './helpers.js';

/** Who the local CLI acts as (the control socket's principal). */
const ME = userInfo().username;

let w: World;
let d: Daemon;
const suite = sshTuiSuite({ ready: (s) => ({ w, d } = s) });
const { admin, oper, view, connectTui } = suite;

// ---- the harness (test/tui-harness.ts) and the helpers on it ---------------------------------

/** Opens a session that is always closed after the test, and waits for its first full frame. */
async function open(t: { after(fn: () => unknown): void }, k: Key, label: string, cols = 120, rows = 40): Promise<Tui> {
  const s = await connectTui(k, label, cols, rows);
  t.after(() => s.close());
  // A session opens on the view its key's last session left (filter, focus, …): start from the default one.
  await s.waitFor((x) => /kindler │ .* │ \S+ \(\w+\) │/.test(x) && / log /.test(x), 15_000);
  s.send(':reset\r');
  await s.waitFor((x) => x.includes('view reset:') && / clusters \(\d+\)/.test(x), 15_000);
  return s;
}

/** Shows only clusters whose fields contain `name` (so the log pane follows that cluster). */
async function filterTo(s: Tui, name: string): Promise<void> {
  s.send(`/${name}`);
  await s.waitFor(`filter: ${name}`);
  s.send('\r');
  await s.waitFor((x) => !x.includes('filter clusters:') && x.includes(`filter: ${name}`));
}

/** Creates a cluster from the local CLI whose create step takes `seconds`; returns the task id. */
const slowCreate = (t: { after(fn: () => unknown): void }, name: string, seconds: number) => slowCreateIn(w, t, name, seconds);

// ---- cases ------------------------------------------------------------------------------------

test('a cluster created from the local CLI appears in an open session, with who started its task', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  assert.match(s.screen(), /kindler │ .* │ \S+ \(admin\) │/);
  const r = await cli(w, ['create', 'fromcli']);
  assert.equal(r.code, 0, r.stderr);
  const row = new RegExp(`fromcli\\s+k3d\\s+present\\s+running\\s+1\\+0\\s+\\d+\\s+\\d+\\s+\\d+\\s+-\\s+${esc(ME)}`);
  await s.waitFor(row, 30_000);
  // The details of the selected cluster list its task and who started it.
  await filterTo(s, 'fromcli');
  s.send('\r');
  const details = await s.waitFor('recent tasks:', 10_000);
  assert.match(details, new RegExp(`t-\\d+.*create.*fromcli.*${esc(ME)}|t-\\d+.*${esc(ME)}.*create`), 'the recent tasks name the user');
  assert.match(details, new RegExp(`owner\\s+${esc(ME)}`));
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('recent tasks:'));
});

test('progress advances through the steps: an intermediate percent and step, then success', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'slowprog');
  const id = await slowCreate(t, 'slowprog', 2);
  const mid = await s.waitFor((x) => {
    const l = taskLine(x, 'slowprog');
    return Boolean(l && l.pct > 0 && l.pct < 100 && /Create the k3d cluster slowprog/.test(l.step));
  }, 15_000);
  const l = taskLine(mid, 'slowprog')!;
  assert.equal(l.id, id);
  assert.equal(l.user, ME.slice(0, 8));
  assert.match(mid, new RegExp(`log ${id} create slowprog · running ${l.pct}%`));
  // Then it moves on and ends: the task leaves the panel and the log says succeeded.
  await s.waitFor((x) => new RegExp(`log ${id} create slowprog · succeeded`).test(x) && x.includes('no queued or running tasks'), 30_000);
  await s.waitFor(/slowprog\s+k3d\s+present\s+running/);
});

test("the selected cluster's task log appears live in the log pane", { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'livelog');
  const id = await slowCreate(t, 'livelog', 2);
  // While the task still runs (in its slow step): the k3d output so far is there, later steps not yet.
  const running = new RegExp(`log ${id} create livelog · running \\d+%`);
  const live = await s.waitFor((x) => running.test(x) && x.includes("Starting node 'k3d-livelog-server-0'"), 15_000);
  assert.ok(!live.includes('==> [3/5]'), live);
  // New lines keep arriving without any key press, until the end.
  await s.waitFor((x) => x.includes('==> [3/5]') && x.includes('==> [5/5]') && x.includes(`[kindler] task ${id} succeeded`), 30_000);
  await s.waitFor(new RegExp(`log ${id} create livelog · succeeded`), 15_000);
});

test('two sessions (admin and viewer) see the same task and progress at the same time', { timeout: 60_000 }, async (t) => {
  const a = await open(t, admin, 'admin');
  const v = await open(t, view, 'viewer');
  assert.match(v.screen(), /\S+ \(viewer\)/);
  await a.waitFor('online: vera');
  await v.waitFor('online: admin');
  const id = await slowCreate(t, 'shared', 3);
  const atStep = (x: string) => {
    const l = taskLine(x, 'shared');
    return Boolean(l && l.id === id && /Create the k3d cluster shared/.test(l.step));
  };
  const sa = await a.waitFor(atStep, 15_000);
  const sv = await v.waitFor(atStep, 2_500);
  // Both screens show it now (the step lasts 3 s): same id, percent, user and step.
  const la = taskLine(a.screen(), 'shared');
  const lv = taskLine(v.screen(), 'shared');
  assert.ok(la && lv, `admin:\n${sa}\nviewer:\n${sv}`);
  assert.deepEqual(lv, la);
  await Promise.all([a, v].map((s) => s.waitFor(/shared\s+k3d\s+present\s+running/, 30_000)));
  await Promise.all([a, v].map((s) => s.waitFor((x) => !taskLine(x, 'shared'), 15_000)));
});

test('resize: 120x40 → 100x30 reflows, 70x20 shows the too-small view, 100x30 restores', { timeout: 60_000 }, async (t) => {
  const s = await open(t, admin, 'admin');
  await s.waitFor('fromcli');
  const full = (cols: number) => (x: string) => {
    const rows = x.split('\n');
    // The table's top border spans exactly the new width, and the footer is the last row.
    return /^┌.*┐$/.test(rows[1]!) && [...rows[1]!].length === cols && /q quit/.test(rows.at(-1)!);
  };
  assert.ok(full(120)(s.screen()), s.screen());
  s.resize(100, 30);
  const mid = await s.waitFor((x) => full(100)(x) && x.split('\n').length === 30 && /NAME↑?\s+PROV/.test(x) && x.includes('fromcli'));
  assert.match(mid.split('\n')[0]!, /kindler │/);
  for (const line of s.lines()) assert.ok([...line].length <= 100, `line wider than 100: ${line}`);
  assert.ok(!s.anyWrapped(), `a row wrapped:\n${mid}`);
  s.resize(70, 20);
  const small = await s.waitFor('terminal too small (need 80x24, have 70x20)');
  assert.ok(!small.includes('fromcli') && !small.includes('NAME'), small);
  s.resize(100, 30);
  const back = await s.waitFor((x) => full(100)(x) && x.includes('fromcli'));
  assert.ok(!back.includes('too small'), back);
  assert.match(back.split('\n')[0]!, /kindler │/);
  assert.ok(!s.anyWrapped(), `a row wrapped:\n${back}`);
});

test(
  'a 1000x1000 terminal is drawn at the 300x120 cap, in its top left corner; a window change to another huge size draws nothing new',
  { timeout: 60_000 },
  async (t) => {
    const s = await connectTui(view, 'huge', 1000, 1000);
    t.after(() => s.close());
    const capped = (x: string) => {
      const rows = x.split('\n');
      return /^┌─* clusters \(\d+\)/.test(rows[1]!) && [...rows[1]!].length === 300 && /q quit/.test(rows[119]!) && rows.slice(120).every((r) => r === '');
    };
    const frame = await s.waitFor(capped, 20_000);
    for (const line of frame.split('\n')) assert.ok([...line].length <= 300, `a row wider than the cap: ${line.length}`);
    assert.match(frame.split('\n')[0]!, /kindler │ .* │ vera \(viewer\) │/);
    await d.waitFor(/vera from 127\.0\.0\.1 \(viewer\): TUI session started \(300x120; the terminal is 1000x1000, drawn at the cap\)/);
    // Still bigger than the cap: the same 300x120 frame, no reflow (no clear) and nothing redrawn.
    const before = s.clears();
    s.setWindow(1200, 900);
    s.send('?'); // answered after the window change: once help is up, the change was handled
    await s.waitFor('this help');
    assert.equal(s.clears(), before, 'a window change within the cap reflowed the screen');
    const rows = s.lines();
    assert.ok([...rows[1]!].length === 300 && rows.slice(120).every((r) => r === ''), s.screen());
    s.send('\x1b');
    await s.waitFor((x) => !x.includes('this help') && capped(x));
  },
);

test('a burst of 20 window changes makes at most 2-3 reflows (one per frame), and the last size wins', { timeout: 60_000 }, async (t) => {
  const s = await open(t, view, 'burst', 120, 40);
  const before = s.clears();
  // 20 sizes, then the last one (the only one 100 wide): only its frame can match below.
  for (let i = 20; i >= 1; i--) s.setWindow(100 + i, 30 + (i % 7));
  s.resize(100, 30); // the headless terminal and the last window change
  const laidOut = (x: string) => {
    const rows = x.split('\n');
    return rows.length === 30 && /^┌.*┐$/.test(rows[1]!) && [...rows[1]!].length === 100 && /q quit/.test(rows[29]!);
  };
  await s.waitFor(laidOut, 15_000);
  const reflows = s.clears() - before;
  // One reflow for the first change, then at most one per 16 ms frame while changes keep arriving: the
  // burst is sent at once, so 2 — or 3 when a loaded machine spreads its packets over two frames (the
  // uncoalesced code made 21).
  assert.ok(reflows >= 1 && reflows <= 3, `${reflows} reflows for a burst of 21 window changes`);
  assert.ok(!s.anyWrapped(), s.screen());
  // And a single change afterwards is drawn as usual.
  s.resize(110, 36);
  await s.waitFor((x) => x.split('\n').length === 36 && [...x.split('\n')[1]!].length === 110 && /q quit/.test(x.split('\n')[35]!));
});

test("a viewer's footer offers no create/delete/start-stop keys and c opens nothing; an operator's offers create", { timeout: 60_000 }, async (t) => {
  const v = await open(t, view, 'viewer');
  await v.waitFor('fromcli');
  const vf = v.footer();
  assert.match(vf, /\? help/);
  assert.match(vf, /q quit/);
  for (const k of ['c create', 'd delete', 's stop', 's start', 'x cancel']) assert.ok(!vf.includes(k), `viewer footer shows ${k}: ${vf}`);
  assert.ok(!v.screen().includes('press c to create'));
  v.send('c');
  v.send('?'); // processed after c: once help is up, c has been handled
  const help = await v.waitFor('this help');
  assert.ok(!help.includes('create a cluster'), help);
  assert.ok(!help.includes('delete the selected'), help);
  v.send('\x1b');
  await v.waitFor((x) => !x.includes('this help'));
  assert.ok(!v.screen().includes('create a cluster'));

  const o = await open(t, oper, 'operator');
  await o.waitFor((x) => /c create/.test(x.split('\n').at(-1)!));
  assert.match(o.screen(), /olga \(operator\)/);
  o.send('c');
  await o.waitFor('create a cluster');
  o.send('\x1b');
  await o.waitFor((x) => !x.includes('create a cluster'));
});

test('type-to-confirm delete as admin: a wrong name deletes nothing, the exact name deletes', { timeout: 60_000 }, async (t) => {
  assert.equal((await cli(w, ['create', 'doomed', '--wait'])).code, 0);
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'doomed');
  await s.waitFor(/doomed\s+k3d\s+present\s+running/);
  await s.waitFor((x) => /d delete/.test(x.split('\n').at(-1)!));
  s.send('d');
  await s.waitFor('Delete cluster doomed?');
  s.send('doome\r');
  await s.waitFor('does not match');
  s.send('x\r'); // "doomex"
  await s.waitFor((x) => x.includes('doomex') && x.includes('does not match'));
  assert.equal((await cli(w, ['show', 'doomed'])).code, 0, 'still there after wrong names');
  s.send('\x7f\x7fed\r'); // fix it to "doomed"
  await s.waitFor(/delete doomed: task t-\d+ (queued|running)/);
  await s.waitFor((x) => !/doomed\s+k3d/.test(x) && x.includes('no cluster matches the filter'), 30_000);
  await eventually(async () => (await cli(w, ['show', 'doomed'])).code === 3, 30_000, '`show doomed` to exit 3');
});

test('attaching mid-task shows the current progress and the log so far', { timeout: 60_000 }, async (t) => {
  const id = await slowCreate(t, 'midtask', 4);
  // Wait (on the daemon's side: its task log file) until the task is inside its slow step, then attach.
  const file = join(w.dataDir, 'logs', `${id}.log`);
  await poll(() => existsSync(file) && readFileSync(file, 'utf8').includes('==> [2/5]'), 15_000, `${id} to reach step 2`);
  const s = await open(t, admin, 'admin');
  const l = taskLine(s.screen(), 'midtask') ?? taskLine(await s.waitFor((x) => Boolean(taskLine(x, 'midtask'))), 'midtask')!;
  assert.equal(l.id, id);
  assert.ok(l.pct > 0 && l.pct < 100, `percent ${l.pct}`);
  assert.match(l.step, /Create the k3d cluster midtask/);
  await filterTo(s, 'midtask');
  s.send('l'); // the log full-screen: everything so far fits
  const log = await s.waitFor(
    (x) => !x.includes('NAME') && new RegExp(`log ${id} create midtask · running \\d+%`).test(x) && x.includes("Starting node 'k3d-midtask-server-0'"),
  );
  assert.match(log, new RegExp(`\\[kindler\\] create midtask \\(k3d\\) started by ${esc(ME)} as task ${id}`));
  assert.match(log, /==> \[1\/5\] Check docker/);
  assert.match(log, /==> \[2\/5\] Create the k3d cluster midtask/);
  assert.ok(!log.includes('==> [3/5]'), log);
  await s.waitFor((x) => new RegExp(`log ${id} create midtask · succeeded`).test(x) && x.includes('==> [5/5]'), 30_000);
});

test('reconnecting after a task finished shows its full log (from disk)', { timeout: 60_000 }, async (t) => {
  const r = await cli(w, ['create', 'finished', '--wait', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const id = /t-\d+/.exec(r.stdout)![0];
  const disk = readFileSync(join(w.dataDir, 'logs', `${id}.log`), 'utf8')
    .trimEnd()
    .split('\n');
  assert.ok(disk.length > 5 && disk.at(-1)!.includes(`task ${id} succeeded`), disk.join('\n'));
  const s = await open(t, admin, 'admin');
  await filterTo(s, 'finished');
  await s.waitFor(new RegExp(`log ${id} create finished · succeeded`));
  s.send('l'); // the log full-screen
  const rows = 40 - 3 - 2; // log lines visible in the full-screen log
  const seen: string[] = [];
  const collect = (x: string) => {
    for (const row of x.split('\n')) {
      const m = /^│(.*)│$/.exec(row);
      if (m) seen.push(m[1]!.trimEnd());
    }
  };
  // Following: the last line is at the bottom.
  collect(await s.waitFor((x) => !x.includes('NAME') && x.includes('· following') && x.includes(disk.at(-1)!)));
  // g: the first line; then page down through the rest.
  s.send('g');
  for (let top = 1; ; top += rows - 1) {
    const at = Math.min(top, Math.max(1, disk.length - rows + 1));
    collect(await s.waitFor(`· paused at ${at} `));
    if (at + rows - 1 >= disk.length) break;
    s.send('\x1b[6~'); // page down
  }
  assert.ok(seen.includes(disk[0]!), 'the first line');
  // Lines wider than the pane end in an ellipsis.
  const missing = disk.filter((line) => !seen.some((r) => r === line.trimEnd() || (r.endsWith('…') && line.startsWith(r.slice(0, -1)))));
  assert.deepEqual(missing, [], `lines not shown; last screen:\n${s.screen()}`);
});

test(
  'q ends the session with exit status 0; 300 connect/quit cycles end cleanly; the daemon RSS stays bounded (+64 MB; the leak check proper is ssh-memory.test.ts, on the heap after GC)',
  { timeout: 150_000 },
  async () => {
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))![1]) / 1024;
    const cycle = async (k: Key, label: string) => {
      const s = await connectTui(k, label, 100, 30);
      try {
        await s.waitFor((x) => / clusters \(\d+\)/.test(x) && /q quit/.test(x), 15_000);
        s.send('q');
        let timer: NodeJS.Timeout | undefined;
        const { code } = await Promise.race([
          s.closed,
          new Promise<never>(
            (_, rej) => (timer = setTimeout(() => rej(new Error(`[${label}] the channel did not close within 10 s of q; screen:\n${s.screen()}`)), 10_000)),
          ),
        ]).finally(() => clearTimeout(timer));
        assert.equal(code, 0, `${label}: exit status`);
      } finally {
        await s.close();
      }
    };
    // Each key opens on the view its last session left (a full-screen log, where q only closes the log):
    // first back to the default view, which the quits below then keep.
    for (const k of [admin, oper, view]) {
      const s = await open({ after: () => undefined }, k, 'reset');
      s.send('q');
      await s.closed;
      await s.close();
    }
    const run = async (n: number, lanes: number) => {
      const ks = [admin, oper, view];
      let next = 0;
      await Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          for (let i = next++; i < n; i = next++) await cycle(ks[(i + lane) % ks.length]!, `cycle ${i}`);
        }),
      );
    };
    await run(150, 2); // warm-up: RSS climbs for the first few hundred sessions (allocator, JIT), then holds
    const before = rss();
    const started = Date.now();
    await run(300, 2);
    const after = rss();
    console.log(
      `rss before/after: ${before.toFixed(1)} MB / ${after.toFixed(1)} MB (${(after - before >= 0 ? '+' : '') + (after - before).toFixed(1)} MB) over 300 cycles in ${Date.now() - started} ms`,
    );
    // RSS swings by tens of MB here without any leak (allocator arenas, JIT); this only catches a gross one.
    assert.ok(after - before <= 64, `RSS grew by ${(after - before).toFixed(1)} MB`);
    // The daemon ended every session it started (each quit reached its cleanup).
    const count = (re: RegExp) =>
      d
        .output()
        .split('\n')
        .filter((l) => re.test(l)).length;
    await poll(() => count(/TUI session started/) === count(/TUI session ended/), 10_000, 'every TUI session to end on the daemon');
    assert.ok(count(/TUI session ended \(quit\)/) >= 220, `${count(/TUI session ended \(quit\)/)} sessions ended by quit`);
    assert.doesNotMatch(d.output(), /session failed and was closed|internal error/);
  },
);

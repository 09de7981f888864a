/**
 * The TUI's pure parts, without blessed: view model, log buffer, layout, key hints, forms, timers.
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { KindlerError } from '../src/core/errors.js';
import type { Cluster, Task } from '../src/core/types.js';
import type { EngineEvent } from '../src/core/feed.js';
import { verbErrorOf } from '../src/commands/argv-api.js';
import { CreateForm, DeletePrompt, errorOf, LineInput } from '../src/tui/forms.js';
import { fitHints, keyId, mainHints, type HintContext } from '../src/tui/keys.js';
import { computeLayout, tooSmallText } from '../src/tui/layout.js';
import { LogBuffer } from '../src/tui/logbuffer.js';
import { LOG_FRAME_MS, logRedrawDue } from '../src/tui/logpane.js';
import { clusterColumns, clusterRow, headerRow, presence, taskRow, TuiModel } from '../src/tui/model.js';
import { auditLines, bannerLines, expiringSoon, reconcileLines } from '../src/tui/ops.js';
import { IdleWatch, RenderScheduler, Ticker } from '../src/tui/scheduler.js';
import { clean, countdownChangesAt, displayWidth, fit, memoSize, textBar, truncate, until, untilChangesAt } from '../src/tui/text.js';
import { ViewKeeper } from '../src/ssh/views.js';
import { splitMouseReports } from '../src/ssh/mouse.js';
import { lineLevel, stripStamp } from '../src/tui/logpane.js';
import { wrapText } from '../src/tui/text.js';

function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 2,
    httpPort: 8080,
    httpsPort: 8443,
    apiPort: 6443,
    owner: 'alice',
    createdAt: '2026-01-01T00:00:00Z',
    desired: 'present',
    actual: 'running',
    kubeContext: 'k',
    kubeconfig: 'f',
    updatedAt: '2026-01-01T00:00:00Z',
    ...over,
  };
}
function task(id: string, c: string, over: Partial<Task> = {}): Task {
  return {
    id,
    kind: 'create',
    cluster: c,
    user: 'alice',
    state: 'running',
    progress: 0,
    steps: [],
    createdAt: '2026-01-01T00:00:00Z',
    notes: [],
    logLines: 0,
    ...over,
  };
}
const ev = (seq: number, e: object) => ({ seq, ...e }) as EngineEvent;

test('model: snapshot, then events newer than it; stale events are ignored', () => {
  const m = new TuiModel();
  assert.equal(m.loaded, false);
  m.load({ seq: 5, clusters: [cluster('b'), cluster('a')], tasks: [task('t-1', 'a', { state: 'succeeded' })], sessions: [] });
  assert.equal(m.apply(ev(5, { type: 'cluster', cluster: cluster('zzz') })), null);
  assert.equal(m.apply(ev(6, { type: 'cluster', cluster: cluster('c', { owner: 'bob' }) })), 'clusters');
  assert.equal(m.apply(ev(7, { type: 'task', task: task('t-2', 'a') })), 'tasks');
  assert.equal(m.apply(ev(8, { type: 'cluster-removed', name: 'b' })), 'clusters');
  assert.deepEqual(
    m.view('name', '').map((c) => c.name),
    ['a', 'c'],
  );
  assert.deepEqual(
    m.view('owner', '').map((c) => c.name),
    ['a', 'c'],
  );
  assert.deepEqual(
    m.view('name', 'BOB').map((c) => c.name),
    ['c'],
  );
  assert.equal(m.activeTaskFor('a')?.id, 't-2');
  assert.equal(m.latestTaskIdFor('a'), 't-2');
  assert.equal(m.latestTaskIdFor('c'), undefined);
  m.apply(ev(9, { type: 'cluster', cluster: cluster('c', { lastTaskId: 't-40' }) }));
  assert.equal(m.latestTaskIdFor('c'), 't-40', "the cluster's own lastTaskId when its task is not in the list");
});

test('model: active tasks are running first, then queued; finished tasks are pruned', () => {
  const m = new TuiModel();
  m.load({ seq: 0, clusters: [], tasks: [], sessions: [] });
  let seq = 0;
  m.apply(ev(++seq, { type: 'task', task: task('t-3', 'x', { state: 'queued' }) }));
  m.apply(ev(++seq, { type: 'task', task: task('t-10', 'y') }));
  m.apply(ev(++seq, { type: 'task', task: task('t-2', 'z') }));
  assert.deepEqual(
    m.activeTasks().map((t) => t.id),
    ['t-2', 't-10', 't-3'],
  );
  for (let i = 100; i < 1000; i++) m.apply(ev(++seq, { type: 'task', task: task(`t-${i}`, 'q', { state: 'succeeded' }) }));
  assert.ok(m.tasks.size <= 360, `kept ${m.tasks.size}`);
  assert.ok(m.tasks.has('t-999') && m.tasks.has('t-3'));
});

test('table columns fit the width; the domain column is dropped when narrow', () => {
  const wide = clusterColumns(118);
  assert.ok(wide.some((c) => c.title === 'DOMAIN'));
  const narrow = clusterColumns(78);
  assert.ok(!narrow.some((c) => c.title === 'DOMAIN'));
  for (const [w, cols] of [
    [118, wide],
    [78, narrow],
  ] as const) {
    const row = clusterRow(
      cluster('a-very-long-cluster-name-that-will-not-fit-anywhere', { expiresAt: '2026-01-01T02:00:00Z' }),
      cols,
      Date.parse('2026-01-01T00:00:00Z'),
    );
    assert.ok(displayWidth(row) <= w, `${row.length} > ${w}`);
    assert.ok(displayWidth(headerRow(cols)) <= w);
    assert.match(row, /…/);
    assert.match(row, /2h\s*$/);
  }
});

test('cells and task lines are sanitized', () => {
  const bad = 'a\x1b]0;pwned\x07b\x1b[2Jc\x9b1m';
  const row = clusterRow(cluster(bad, { owner: bad }), clusterColumns(118), 0);
  // Only the table's own state colours (SGR 3x/39/90) are escapes; nothing of the untrusted text is.
  assert.ok(!/[\x1b\x9b\x07]/.test(row.replace(/\x1b\[(3\d|90)m/g, '')));
  const line = taskRow(task('t-1', bad, { step: bad, progress: 42, user: bad, startedAt: '2026-01-01T00:00:00Z' }), 120, Date.parse('2026-01-01T00:01:05Z'));
  assert.ok(!/[\x1b\x9b\x07]/.test(line));
  assert.match(line, /42%\s+1m5s/);
  assert.equal(clean(''), '-');
});

test('text helpers: width, truncate, fit, bar', () => {
  assert.equal(displayWidth('a界b'), 4);
  assert.equal(truncate('abcdef', 4), 'abc…');
  assert.equal(truncate('abc', 4), 'abc');
  assert.equal(fit('ab', 4, true), '  ab');
  assert.equal(textBar(50, 10), '█████░░░░░');
  assert.equal(textBar(150, 4), '████');
});

test('presence lists the other users', () => {
  const s = (user: string, id: string) => ({ id, user, role: 'viewer', source: 'ssh', since: '' });
  assert.equal(presence([s('alice', '1')], 'alice'), 'no one else online');
  assert.equal(presence([s('alice', '1'), s('bob', '2'), s('bob', '3'), s('alice', '4')], 'alice'), 'online: bob×2, you×2');
});

test('log buffer: history then live batches, joined by from without doubles or gaps', () => {
  const b = new LogBuffer('t-1', 10);
  b.live(3, ['d', 'e']); // before the history: held
  assert.equal(b.lines.length, 0);
  assert.deepEqual(b.history(['a', 'b', 'c', 'd']), { ok: true, trimmed: 0 });
  assert.deepEqual([...b.lines], ['a', 'b', 'c', 'd', 'e']);
  b.live(4, ['e', 'f']);
  b.live(0, ['a']);
  assert.deepEqual([...b.lines], ['a', 'b', 'c', 'd', 'e', 'f']);
  assert.deepEqual(b.live(9, ['x']), { ok: false, gap: 3 });
  assert.equal(b.end, 6);
  assert.deepEqual(b.search('E'), [4]);
});

test('log buffer: bounded, counting the lines not in memory; lines are sanitized', () => {
  const b = new LogBuffer('t-1', 100);
  b.history(Array.from({ length: 250 }, (_, i) => `l${i}`));
  assert.equal(b.lines.length, 100);
  assert.equal(b.dropped, 150);
  for (let i = 250; i < 1000; i++) b.live(i, [`l${i}\x1b[2J`]);
  assert.ok(b.lines.length <= 110);
  assert.equal(b.dropped + b.lines.length, 1000);
  assert.equal(b.lines.at(-1), 'l999');
  const failed = new LogBuffer('t-2');
  failed.history(null, 'log unavailable: gone');
  assert.equal(failed.error, 'log unavailable: gone');
  assert.deepEqual(failed.live(7, ['late']), { ok: true, trimmed: 0 });
  assert.equal(failed.dropped, 7);
});

test('layout: bands fill the terminal; too small below 80x24', () => {
  for (const [c, r, n] of [
    [80, 24, 0],
    [80, 24, 9],
    [200, 60, 3],
  ] as const) {
    const l = computeLayout(c, r, { fullLog: false, activeTasks: n });
    assert.equal(l.tooSmall, false);
    assert.equal(l.header.height + l.table.height + l.tasks.height + l.log.height + 2, r);
    assert.ok(l.table.height >= 6 && l.log.height >= 3);
  }
  assert.equal(computeLayout(79, 24, { fullLog: false, activeTasks: 0 }).tooSmall, true);
  assert.equal(computeLayout(80, 23, { fullLog: false, activeTasks: 0 }).tooSmall, true);
  assert.equal(computeLayout(80, 24, { fullLog: true, activeTasks: 0 }).log.height, 21);
  assert.equal(tooSmallText(70, 20), 'terminal too small (need 80x24, have 70x20)');
});

test('keys: ids, and hints only for what the user may do', () => {
  assert.equal(keyId('\r', { name: 'return' }), null);
  assert.equal(keyId('\r', { name: 'enter' }), 'enter');
  assert.equal(keyId('\x03', { name: 'c', ctrl: true }), 'C-c');
  assert.equal(keyId('S', { name: 's', shift: true }), 'S');
  assert.equal(keyId(undefined, { name: 'tab', shift: true }), 'S-tab');
  assert.equal(keyId('/', undefined), '/');
  const base: HintContext = {
    focus: 'table',
    fullLog: false,
    hasCluster: true,
    canCreate: false,
    canDelete: false,
    canCancel: false,
    following: true,
    searching: false,
  };
  const none = fitHints(mainHints(base), 200);
  assert.ok(!/create|delete|stop|start|cancel/.test(none), none);
  const all = fitHints(mainHints({ ...base, canCreate: true, canDelete: true, toggle: 'start', canCancel: true }), 200);
  for (const k of ['c{/bold} create', 'd{/bold} delete', 's{/bold} start', 'x{/bold} cancel']) assert.ok(all.includes(k), all);
  const tight = fitHints(mainHints({ ...base, canCreate: true }), 30);
  assert.match(tight, /\? ?\{\/bold\} help.*q\{\/bold\} quit/);
});

test('create form: the failed field is marked before its value, so a long value never hides the mark', () => {
  const f = new CreateForm();
  const type = (s: string) => [...s].forEach((ch) => f.key(keyId(ch, undefined), ch, undefined));
  type('日'.repeat(64)); // 128 columns: wider than any form
  f.fail('name: must be at most 63 characters for kind (got 64)', 'name');
  const row = f.lines()[0]!.replace(/\{[^}]*\}/g, '');
  assert.ok(row.indexOf('✗') >= 0 && row.indexOf('✗') < row.indexOf('日'), row);
  assert.ok(row.indexOf('✗') < 20, row);
});

test('create form: argv from the fields (blank = daemon default) and inline errors', () => {
  const f = new CreateForm();
  const type = (s: string) => [...s].forEach((ch) => f.key(keyId(ch, undefined), ch, undefined));
  type('demo');
  f.key('tab', undefined, undefined);
  f.key('right', undefined, undefined);
  f.key('right', undefined, undefined); // default → k3d → kind
  for (let i = 0; i < 4; i++) f.key('tab', undefined, undefined); // servers, agents, image, http port
  type('30080');
  assert.deepEqual(f.argv(), ['create', '--provider=kind', '--http-port=30080', '--json', '--', 'demo']);
  assert.equal(f.key('enter', '\r', { name: 'enter' }), 'submit');
  f.fail('ttl: must be a duration', 'ttl');
  assert.equal(f.focus, 9);
  assert.ok(f.lines().some((l) => l.includes('error: ttl: must be a duration')));
  assert.equal(f.key('escape', undefined, undefined), 'cancel');
  assert.deepEqual(new CreateForm().argv(), ['create', '--json', '--']);
});

test('create form: every broken field is reported at once, the first gets the focus, nothing is submitted', () => {
  const f = new CreateForm();
  const type = (s: string) => [...s].forEach((ch) => f.key(keyId(ch, undefined), ch, undefined));
  type('9lives');
  f.key('tab', undefined, undefined);
  f.key('tab', undefined, undefined);
  type('8'); // servers
  f.key('tab', undefined, undefined);
  type('x'); // agents
  for (let i = 0; i < 5; i++) f.key('tab', undefined, undefined);
  type('10.0.0.0/33'); // subnet
  assert.equal(f.key('enter', '\r', { name: 'enter' }), null);
  assert.deepEqual([...f.problems.keys()], ['name', 'servers', 'agents', 'subnet']);
  assert.equal(f.focus, 0);
  const text = f.lines(76).join('\n');
  for (const k of ['name: must start', 'servers: must be', 'agents: must be', 'subnet: ']) assert.ok(text.includes(k), text);
  // Every line keeps the form's width whatever is typed.
  const widths = () => f.lines(76).map((l) => l.replace(/\{[^}]*\}/g, '').length);
  const before = Math.max(...widths());
  type('x'.repeat(60));
  assert.ok(Math.max(...widths()) <= Math.max(before, 76));
});

test('delete prompt: only the exact name submits', () => {
  const p = new DeletePrompt('alpha');
  for (const ch of 'Alpha') p.key(keyId(ch, undefined), ch, undefined);
  assert.equal(p.key('enter', undefined, undefined), null);
  assert.match(p.error ?? '', /does not match/);
  p.key('C-u', undefined, undefined);
  for (const ch of 'alpha') p.key(keyId(ch, undefined), ch, undefined);
  assert.equal(p.key('enter', undefined, undefined), 'submit');
});

test('line input ignores control characters; verbError prefers the JSON error', () => {
  const i = new LineInput(5);
  i.edit(null, '\x1b', undefined);
  i.edit('a', 'a', undefined);
  i.edit('{', '{', undefined);
  assert.equal(i.value, 'a{');
  assert.equal(i.show(false), 'a{open}');
  const verbError = (out: string, err: string) => errorOf(verbErrorOf({ code: 1, out, err }));
  assert.deepEqual(verbError('{"error":{"message":"x: bad","field":"x"}}\n', 'error: other\n'), { message: 'x: bad', field: 'x' });
  assert.deepEqual(verbError('', 'error: name: required\n'), { message: 'name: required' });
});

test('render scheduler: many requests in one window make one frame; now() renders at once', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  try {
    let frames = 0;
    const r = new RenderScheduler(() => frames++, 50);
    for (let i = 0; i < 100; i++) r.request();
    mock.timers.tick(0);
    assert.equal(frames, 1);
    for (let i = 0; i < 100; i++) r.request();
    mock.timers.tick(49);
    assert.equal(frames, 1);
    mock.timers.tick(1);
    assert.equal(frames, 2);
    r.request();
    r.now();
    assert.equal(frames, 3);
    mock.timers.tick(100);
    assert.equal(frames, 3);
    r.stop();
    r.request();
    mock.timers.tick(100);
    assert.equal(frames, 3);

    let ticks = 0;
    const t = new Ticker(() => ticks++);
    t.set(true);
    t.set(true);
    mock.timers.tick(3000);
    t.set(false);
    mock.timers.tick(3000);
    assert.equal(ticks, 3);
  } finally {
    mock.timers.reset();
  }
});

test('idle watch: warns, a key resets, then closes', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  try {
    const log: string[] = [];
    const w = new IdleWatch(
      1000,
      3000,
      (left) => log.push(`warn ${left}`),
      () => log.push('close'),
    );
    mock.timers.tick(999);
    assert.deepEqual(log, []);
    mock.timers.tick(1);
    assert.deepEqual(log, ['warn 2000']);
    assert.equal(w.activity(), true);
    assert.equal(w.activity(), false);
    mock.timers.tick(999);
    assert.deepEqual(log, ['warn 2000']);
    mock.timers.tick(1);
    assert.deepEqual(log, ['warn 2000', 'warn 2000']);
    mock.timers.tick(1999);
    assert.equal(log.length, 2);
    mock.timers.tick(1);
    assert.deepEqual(log, ['warn 2000', 'warn 2000', 'close']);
    mock.timers.tick(10_000);
    assert.equal(log.length, 3);
  } finally {
    mock.timers.reset();
  }
});

test('log buffer: live lines held while the history loads are bounded too', () => {
  const b = new LogBuffer('t-1', 100);
  for (let i = 50; i < 1050; i += 10)
    b.live(
      i,
      Array.from({ length: 10 }, (_, j) => `l${i + j}`),
    );
  assert.deepEqual(b.history(Array.from({ length: 50 }, (_, i) => `l${i}`)), { ok: true, trimmed: 0 });
  assert.equal(b.lines.at(-1), 'l1049');
  assert.equal(b.dropped + b.lines.length, 1050);
  assert.ok(b.lines.length >= 100 && b.lines.length <= 110);
  // A single huge batch before the history.
  const c = new LogBuffer('t-2', 100);
  c.live(
    0,
    Array.from({ length: 1000 }, (_, i) => `m${i}`),
  );
  c.history(['m0']);
  assert.equal(c.lines.at(-1), 'm999');
  assert.equal(c.dropped + c.lines.length, 1000);
});

test('layout: TTL warning lines sit above the status line and take rows from the body', () => {
  const l = computeLayout(80, 24, { fullLog: false, activeTasks: 2, banner: 2 });
  assert.deepEqual(l.banner, { top: 20, height: 2 });
  assert.equal(l.header.height + l.table.height + l.tasks.height + l.log.height + l.banner.height + 2, 24);
  assert.equal(l.log.top + l.log.height, l.banner.top);
  assert.equal(computeLayout(80, 24, { fullLog: false, activeTasks: 0, banner: 9 }).banner.height, 3);
  assert.equal(computeLayout(80, 24, { fullLog: true, activeTasks: 0, banner: 1 }).log.height, 20);
  assert.equal(computeLayout(80, 24, { fullLog: false, activeTasks: 0 }).banner.height, 0);
});

test('expiry: warnings only within 10 minutes, at most 3 lines; only future expiries tick', () => {
  const now = Date.parse('2026-01-01T10:00:00Z');
  const at = (ms: number) => new Date(now + ms).toISOString();
  const cs = [
    cluster('a', { expiresAt: at(9 * 60_000) }),
    cluster('b', { expiresAt: at(60_000) }),
    cluster('c', { expiresAt: at(11 * 60_000) }),
    cluster('d', { expiresAt: at(-1000) }),
    cluster('e', { expiresAt: at(30_000), desired: 'absent' }),
  ];
  assert.deepEqual(
    expiringSoon(cs, now).map((c) => c.name),
    ['b', 'a'],
  );
  const lines = bannerLines(expiringSoon(cs, now), now, 200, (c) => c.name === 'a');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /⚠ b expires in 1m — kindler extend b 2h\{/);
  assert.match(lines[1]!, /⚠ a expires in 9m — kindler extend a 2h \(or select it and press e for \+1h\)/);
  const many = ['p', 'q', 'r', 's'].map((n, i) => cluster(n, { expiresAt: at((i + 1) * 60_000) }));
  const four = bannerLines(many, now, 200, () => false);
  assert.equal(four.length, 3);
  assert.match(four[2]!, /2 more clusters expire within 10m: r, s/);
  assert.match(bannerLines([cluster('x{red-fg}\x1b[2J', { expiresAt: at(60_000) })], now, 200, () => false)[0]!, /x\{open\}red-fg\{close\}/);
  // The EXPIRES cell of an expired cluster never changes by itself; one still ahead does.
  assert.equal(untilChangesAt(cs[3]!.expiresAt, now) < Infinity, false, 'expired stays put');
  assert.equal(untilChangesAt(cs[2]!.expiresAt, now) < Infinity, true);
});

test('reconcile and audit replies as dialog lines', () => {
  const none = reconcileLines({ at: 'x', dryRun: false, drift: [], healed: [], skipped: [], errors: [] });
  assert.ok(none.some((l) => l.includes('no drift')));
  const bad = reconcileLines(new KindlerError('refused', 'reconcile needs the admin role'));
  assert.deepEqual(bad, ['{red-fg}reconcile needs the admin role{/red-fg}']);
  const ev = (at: string, user: string) => ({ at, user, source: 'ssh', action: 'create', target: 'c', result: 'ok' });
  const lines = auditLines([ev('2026-01-01T00:02:00Z', 'late'), ev('2026-01-01T00:01:00Z', 'early')]);
  assert.ok(lines[0]!.includes('early') && lines[1]!.includes('late'));
  assert.deepEqual(auditLines([]), ['{gray-fg}no audit events{/gray-fg}']);
});

test('a form field keeps every character as typed: a combining mark or an emoji is never dropped (so "é" never becomes the valid name "e")', () => {
  const i = new LineInput(20);
  for (const ch of ['e', '\u0301']) i.edit(null, ch, { name: undefined, full: ch });
  assert.equal(i.value, 'e\u0301');
  assert.match(i.show(false), /é/, 'shown composed');
  const j = new LineInput(20);
  for (const ch of ['a', '🙂', '\u200b', 'b']) j.edit(null, ch, { name: undefined, full: ch });
  assert.equal(j.value, 'a🙂\u200bb');
  // Control characters still never reach the value.
  const k = new LineInput(20);
  for (const ch of ['x', '\x1b', '\x07', '\x9b']) k.edit(null, ch, { name: undefined, full: ch });
  assert.equal(k.value, 'x');
});

// ---- issue 18: view keeper, mouse report split, log levels and stamps, sort/mine view ----------

test('ViewKeeper: at most max entries (least recently used dropped first), each forgotten after the TTL', () => {
  let now = 0;
  const k = new ViewKeeper<number>(2, 1000, () => now);
  k.set('a', 1);
  k.set('b', 2);
  assert.equal(k.get('a'), 1); // a is now the most recently used
  k.set('c', 3);
  assert.equal(k.get('b'), undefined);
  assert.equal(k.get('a'), 1);
  assert.equal(k.size, 2);
  now = 1001;
  assert.equal(k.get('c'), undefined);
  k.set('d', 4);
  assert.equal(k.size, 1);
});

test('splitMouseReports: each mouse report starts a chunk; other bytes stay in order', () => {
  const parts = (s: string) => splitMouseReports(Buffer.from(s, 'latin1')).map((b) => b.toString('latin1'));
  assert.deepEqual(parts('abc'), ['abc']);
  assert.deepEqual(parts('\x1b[<0;5;6M\x1b[<0;5;6m'), ['\x1b[<0;5;6M', '\x1b[<0;5;6m']);
  assert.deepEqual(parts('j\x1b[<64;1;2Mk'), ['j', '\x1b[<64;1;2M', 'k']);
  assert.deepEqual(parts('\x1b[M !!\x1b[M#!!'), ['\x1b[M !!', '\x1b[M#!!']);
  assert.deepEqual(parts('\x1b[A\x1b[B'), ['\x1b[A\x1b[B']);
});

test("log lines: level marks and the tools' time stamps", () => {
  assert.equal(lineLevel('ERRO[0001] boom'), 'error');
  assert.equal(lineLevel('time="x" level=error msg=boom'), 'error');
  assert.equal(lineLevel('FATA[0000] no'), 'error');
  assert.equal(lineLevel('✗ failed'), 'error');
  assert.equal(lineLevel('WARN[0002] hm'), 'warn');
  assert.equal(lineLevel('time="x" level=warning msg=hm'), 'warn');
  assert.equal(lineLevel('==> [1/5] Check'), 'step');
  assert.equal(lineLevel('INFO[0000] fine, no errors'), undefined);
  assert.equal(stripStamp('time="2026-01-02T03:04:05Z" level=info msg=x'), 'level=info msg=x');
  assert.equal(stripStamp('INFO[0007] plain'), 'INFO plain');
  assert.equal(stripStamp('2026-01-02T03:04:05.123Z starting'), 'starting');
  assert.equal(stripStamp('==> [1/5] Check'), '==> [1/5] Check');
  assert.deepEqual(wrapText('abcdefg', 3), ['abc', 'def', 'g']);
  assert.deepEqual(wrapText('日本語です', 4), ['日本', '語で', 'す']);
});

test("view: mine keeps only the owner's clusters; desc reverses; the header marks the sorted column", () => {
  const m = new TuiModel();
  const c = (name: string, owner: string) =>
    ({ name, owner, provider: 'k3d', desired: 'present', actual: 'running', servers: 1, agents: 0, createdAt: '2026-01-01T00:00:00Z' }) as unknown as Cluster;
  m.load({ seq: 1, clusters: [c('a', 'me'), c('b', 'you'), c('c', 'me')], tasks: [], sessions: [] });
  assert.deepEqual(
    m.view('name', '', { owner: 'me' }).map((x) => x.name),
    ['a', 'c'],
  );
  assert.deepEqual(
    m.view('name', '', { desc: true }).map((x) => x.name),
    ['c', 'b', 'a'],
  );
  const cols = clusterColumns(120);
  assert.match(headerRow(cols, { key: 'owner', desc: true }), /OWNER↓/);
  assert.match(headerRow(cols, { key: 'provider', desc: false }), /PRO↑/);
  assert.doesNotMatch(headerRow(cols), /[↑↓]/);
});

test('log redraws while lines keep coming: every LOG_FRAME_MS on the clock grid, however late each one ran', () => {
  assert.equal(LOG_FRAME_MS, 50);
  const rows: [drawnAt: number, changedAt: number, due: number, why: string][] = [
    [1000, 1049, 1050, 'drawn on the grid, lines keep coming: one frame period later'],
    [1003.7, 1049, 1050, 'drawn a little after its grid point (timer, render): still one period after that point'],
    [1024.9, 1060, 1050, 'drawn late in its slot: the next slot a period on, not a grid step later'],
    [1000, 1001, 1050, 'lines paused right after a redraw: not before the least gap (40 ms, rounded up to the grid)'],
    [1000, 1010, 1050, 'paused 25 ms after 1010 is 1035: the least gap still holds it to 1050'],
    [1000, 1030, 1050, 'paused: 1055 is past the period, so the period wins'],
  ];
  for (const [drawnAt, changedAt, due, why] of rows) assert.equal(logRedrawDue(drawnAt, changedAt), due, why);
  // A steady stream with redraws each running 2-9 ms after they were due: still 50 ms apart.
  let at = 1000;
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const due = logRedrawDue(at, at + 49);
    at = due + 2 + (i % 8);
    times.push(due);
  }
  for (let i = 1; i < times.length; i++) assert.equal(times[i]! - times[i - 1]!, 50, `redraw ${i}`);
});

test('widths and cuts of non-ASCII text are remembered: the same answers every time, within a bound', () => {
  const texts = [
    'log t-1 create dev · running 40% · following · whole log: kindler logs t-1 > file',
    'dev ████████░░░░ 40% 2m3s',
    '日本語のクラスタ名 · 長い',
    'e\u0301t\u00e9 ✓ ✗ →',
  ];
  for (const s of texts)
    for (const w of [1, 2, 5, 10, 20, 200]) {
      const first = [displayWidth(s), truncate(s, w)];
      assert.deepEqual([displayWidth(s), truncate(s, w)], first, `${s} at ${w}`);
      assert.ok(displayWidth(truncate(s, w)) <= w, `${s} cut to ${w}`);
    }
  assert.equal(displayWidth('日本'), 4);
  assert.equal(truncate('日本語', 5), '日本…');
  for (let i = 0; i < 10_000; i++) displayWidth(`· ${i}`);
  assert.ok(memoSize() <= 4096, `memo holds ${memoSize()} entries`);
});

test('EXPIRES: whole minutes until the last 10 minutes, then seconds; the next change is exactly when the text changes', () => {
  const t = Date.parse('2026-01-01T12:00:00.000Z');
  const iso = new Date(t).toISOString();
  const left = (ms: number) => until(iso, t - ms);
  assert.equal(left(2 * 86_400_000 + 3 * 3_600_000 + 5000), '2d3h');
  assert.equal(left(2 * 3_600_000 + 5 * 60_000 + 7000), '2h5m');
  assert.equal(left(42 * 60_000 + 13_000), '42m');
  assert.equal(left(10 * 60_000 + 59_000), '10m');
  assert.equal(left(9 * 60_000 + 59_000), '9m59s');
  assert.equal(left(5000), '5s');
  assert.equal(left(0), 'expired');
  // From many points, stepping by 250 ms: the text holds until untilChangesAt and changes right at it.
  for (const start of [3 * 3_600_000 + 1234, 3_600_000 + 30_500, 59 * 60_000 + 999, 11 * 60_000 + 17, 10 * 60_000 + 400, 9 * 60_000 + 30_001, 61_000]) {
    let now = t - start;
    for (let n = 0; n < 40 && now < t; n++) {
      const at = untilChangesAt(iso, now);
      assert.ok(at > now, `${start}: the change is ahead`);
      const text = until(iso, now);
      for (let x = now; x < at; x += 250) assert.equal(until(iso, x), text, `${start}: changed before ${at - t}`);
      assert.equal(until(iso, at - 1), text, `${start}: changed before ${at - t}`);
      assert.notEqual(until(iso, at), text, `${start}: no change at ${at - t}`);
      now = at;
    }
  }
  // Under an hour but over ten minutes: one wake-up a minute, not one a second.
  const now = t - (42 * 60_000 + 13_000);
  assert.equal(untilChangesAt(iso, now) - now, 13_001);
  assert.equal(countdownChangesAt(t, now) - now, 1);
});

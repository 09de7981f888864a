/**
 * The engine's pure rules (src/core/taskrules.ts, src/core/createrules.ts), table by table: each row is one
 * input and what the rule must make of it. No engine, no files, no processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KindlerError } from '../src/core/errors.js';
import {
  applyRecheck,
  applyScriptOutcome,
  applyTaskEnd,
  createCleanup,
  cutShortCreate,
  endQueuedTask,
  interruptAtStart,
  runOutcome,
  type ProviderStatus,
  type RunEnd,
  type RunFacts,
} from '../src/core/taskrules.js';
import {
  buildCreateRecord,
  buildImportedRecord,
  checkQuota,
  createExpiry,
  createParams,
  resolveCreateRequest,
  retryChanges,
  retryLine,
  subnetClash,
  type CreateRecordFacts,
} from '../src/core/createrules.js';
import type { CreateInput, CreateRequest } from '../src/core/spec.js';
import type { Cluster, Task, TaskKind, TaskState, TaskStep } from '../src/core/types.js';

const AT = '2026-01-02T03:04:05.000Z';
const EARLIER = '2025-12-01T00:00:00.000Z';
const LATER = '2026-01-02T03:04:09.000Z';

function rec(over: Partial<Cluster> = {}): Cluster {
  return {
    name: 'dev',
    provider: 'k3d',
    servers: 1,
    agents: 0,
    httpPort: 18080,
    httpsPort: 18443,
    apiPort: 16443,
    owner: 'alice',
    createdAt: EARLIER,
    desired: 'present',
    actual: 'running',
    kubeContext: 'k3d-dev',
    kubeconfig: '/data/kubeconfig/dev.yaml',
    options: { route: true, register: [] },
    updatedAt: EARLIER,
    ...over,
  };
}

function task(over: Partial<Task> = {}): Task {
  return {
    id: 't-7',
    kind: 'create',
    cluster: 'dev',
    user: 'alice',
    state: 'running',
    progress: 10,
    steps: [],
    createdAt: EARLIER,
    notes: [],
    params: {},
    logLines: 0,
    ...over,
  };
}

const step = (key: string, state: TaskStep['state'], error?: string): TaskStep => ({
  n: 1,
  of: 3,
  key,
  title: `Title ${key}`,
  state,
  startedAt: EARLIER,
  ...(state !== 'running' ? { finishedAt: AT } : {}),
  ...(error ? { error } : {}),
});

/** The message and kind of the error `fn` throws, or null when it throws none. */
function thrown(fn: () => unknown): { kind: string; message: string } | null {
  try {
    fn();
    return null;
  } catch (e) {
    assert.ok(e instanceof KindlerError, `not a KindlerError: ${String(e)}`);
    return { kind: e.kind, message: e.message };
  }
}

// ---- runOutcome: how a script's run ended -> the task's state and reason ----------------------------------

test('runOutcome: every way a run ends, in precedence order', () => {
  const ok: RunEnd = { exitCode: 0, signal: null, stopped: null };
  const facts = (over: Partial<RunFacts> = {}): RunFacts => ({
    kind: 'create',
    notes: [],
    timeoutSeconds: 600,
    stderrTail: [],
    result: { kubeContext: 'k3d-dev' },
    ...over,
  });
  const rows: { name: string; r: RunEnd; f: RunFacts; state: TaskState; reason?: string }[] = [
    {
      name: 'spawn error wins over everything',
      r: { exitCode: null, signal: null, stopped: 'cancel', spawnError: 'ENOENT' },
      f: facts(),
      state: 'failed',
      reason: 'the script could not run: ENOENT',
    },
    {
      name: 'cancel names who asked',
      r: { exitCode: null, signal: 'SIGTERM', stopped: 'cancel' },
      f: facts({ notes: ['a note', 'cancel requested by bob'] }),
      state: 'cancelled',
      reason: 'cancelled by bob',
    },
    { name: 'cancel with no request note', r: { exitCode: 143, signal: null, stopped: 'cancel' }, f: facts(), state: 'cancelled', reason: 'cancelled' },
    {
      name: "timeout with the script's error",
      r: { exitCode: null, signal: 'SIGKILL', stopped: 'timeout' },
      f: facts({ kind: 'delete', timeoutSeconds: 300, errorText: 'waiting for nodes' }),
      state: 'failed',
      reason: 'timed out after 300s (waiting for nodes)',
    },
    {
      name: 'timeout without an error',
      r: { exitCode: null, signal: 'SIGTERM', stopped: 'timeout' },
      f: facts({ timeoutSeconds: 5 }),
      state: 'failed',
      reason: 'timed out after 5s',
    },
    {
      name: 'shutdown interrupts',
      r: { exitCode: null, signal: 'SIGTERM', stopped: 'shutdown' },
      f: facts({ abort: 'disk full' }),
      state: 'interrupted',
      reason: 'kindler stopped while the task was running',
    },
    {
      name: 'a log that cannot be written fails it, even on exit 0',
      r: { exitCode: 0, signal: null, stopped: 'failed' },
      f: facts({ abort: 'cannot write logs/t-7.log: ENOSPC' }),
      state: 'failed',
      reason: 'cannot write logs/t-7.log: ENOSPC',
    },
    { name: 'sync of a running cluster succeeds', r: ok, f: facts({ kind: 'sync', result: { state: 'running' } }), state: 'succeeded' },
    {
      name: 'sync of a stopped cluster fails',
      r: ok,
      f: facts({ kind: 'sync', result: { state: 'stopped' } }),
      state: 'failed',
      reason: 'the provider reports the cluster stopped; start it first',
    },
    {
      name: 'sync without a result line',
      r: ok,
      f: facts({ kind: 'sync', result: undefined }),
      state: 'failed',
      reason: 'the provider reports the cluster unknown; start it first',
    },
    { name: 'create with a result succeeds', r: ok, f: facts(), state: 'succeeded' },
    {
      name: 'create without a result line fails',
      r: ok,
      f: facts({ result: undefined }),
      state: 'failed',
      reason: 'the script exited 0 but printed no result line',
    },
    { name: 'delete needs no result line', r: ok, f: facts({ kind: 'delete', result: undefined }), state: 'succeeded' },
    {
      name: 'exit code with the error marker',
      r: { exitCode: 3, signal: null, stopped: null },
      f: facts({ errorText: 'image not found', stderrTail: ['ERROR: x'] }),
      state: 'failed',
      reason: 'image not found',
    },
    {
      name: 'exit code with a tool error line on stderr',
      r: { exitCode: 1, signal: null, stopped: null },
      f: facts({ stderrTail: ['ERROR: failed to create cluster: boom', "Run 'kind --help' for usage"] }),
      state: 'failed',
      reason: 'the script exited with code 1: ERROR: failed to create cluster: boom',
    },
    {
      name: 'exit code with plain stderr: its last line',
      r: { exitCode: 2, signal: null, stopped: null },
      f: facts({ kind: 'stop', stderrTail: ['first', 'last words'] }),
      state: 'failed',
      reason: 'the script exited with code 2: last words',
    },
    {
      name: 'exit code with no stderr',
      r: { exitCode: 1, signal: null, stopped: null },
      f: facts({ kind: 'start' }),
      state: 'failed',
      reason: 'the script exited with code 1',
    },
    {
      name: 'killed by a signal nobody sent',
      r: { exitCode: null, signal: 'SIGKILL', stopped: null },
      f: facts({ kind: 'import-image' }),
      state: 'failed',
      reason: 'the script was killed by SIGKILL',
    },
  ];
  for (const row of rows) {
    const got = runOutcome(row.r, row.f);
    assert.deepEqual(got, row.reason === undefined ? { state: row.state } : { state: row.state, reason: row.reason }, row.name);
  }
});

// ---- createCleanup: a create that did not succeed -> what its cleanup is recorded as ---------------------

test("createCleanup: what an unfinished create's cleanup is, or that kindler must run it", () => {
  const rows: [TaskState, 'begin' | 'done' | 'failed' | undefined, boolean, ReturnType<typeof createCleanup>][] = [
    ['succeeded', undefined, true, null],
    ['failed', 'done', true, 'done'],
    ['cancelled', 'done', false, 'done'],
    ['failed', undefined, false, 'not-needed'],
    ['interrupted', 'begin', false, 'not-needed'],
    ['interrupted', 'failed', true, 'failed'],
    ['interrupted', 'begin', true, undefined],
    ['interrupted', undefined, true, undefined],
    ['failed', 'failed', true, 'run'],
    ['cancelled', 'begin', true, 'run'],
    ['failed', undefined, true, 'run'],
  ];
  for (const [state, script, reached, want] of rows)
    assert.equal(createCleanup(state, script, reached), want, `${state}, script cleanup ${script}, reached ${reached}`);
});

// ---- applyScriptOutcome: a succeeded script -> the record ---------------------------------------------

test('applyScriptOutcome: what a succeeded script did, per kind', () => {
  const rows: { kind: TaskKind; before: Partial<Cluster>; result?: Record<string, unknown>; want: Partial<Cluster> }[] = [
    {
      kind: 'create',
      before: { actual: 'creating' },
      result: { nodeAddress: '172.18.0.2', kubeContext: 'k3d-dev2' },
      want: { actual: 'running', nodeAddress: '172.18.0.2', kubeContext: 'k3d-dev2' },
    },
    {
      kind: 'create',
      before: { actual: 'creating', nodeAddress: '10.0.0.1' },
      result: { nodeAddress: '' },
      want: { actual: 'running', nodeAddress: '10.0.0.1' },
    },
    { kind: 'start', before: { actual: 'stopped' }, result: { kubeContext: 'other' }, want: { actual: 'running' } },
    { kind: 'sync', before: { actual: 'unknown' }, result: { nodeAddress: '172.18.0.9' }, want: { actual: 'running', nodeAddress: '172.18.0.9' } },
    { kind: 'stop', before: { actual: 'running' }, want: { actual: 'stopped' } },
    { kind: 'delete', before: { actual: 'deleting' }, want: { actual: 'absent' } },
    { kind: 'import-image', before: { actual: 'running' }, result: { nodeAddress: 'x' }, want: { actual: 'running' } },
  ];
  for (const row of rows) {
    const c = rec(row.before);
    applyScriptOutcome(c, row.kind, row.result, AT);
    assert.deepEqual(c, rec({ ...row.before, ...row.want, updatedAt: AT }), `${row.kind} ${JSON.stringify(row.result)}`);
  }
});

// ---- applyTaskEnd: a task's end -> the record, remove, recheck ------------------------------------------

test('applyTaskEnd: every end state against every kind, cleanup outcomes and lastError', () => {
  type Row = {
    name: string;
    kind: TaskKind;
    state: TaskState;
    reason?: string;
    postFailed?: boolean;
    cleanup?: Task['cleanup'];
    params?: Task['params'];
    before?: Partial<Cluster>;
    want: Partial<Cluster> | 'removed';
    recheck?: boolean;
  };
  const rows: Row[] = [
    {
      name: 'create succeeded',
      kind: 'create',
      state: 'succeeded',
      before: { actual: 'creating', lastError: 'old' },
      want: { actual: 'running', kubeContext: 'k3d-new' },
    },
    {
      name: 'create failed, kept failed',
      kind: 'create',
      state: 'failed',
      reason: 'boom',
      cleanup: 'done',
      before: { actual: 'creating' },
      want: { actual: 'failed', lastError: 'boom' },
    },
    {
      name: 'create failed, cleanup failed',
      kind: 'create',
      state: 'failed',
      reason: 'boom',
      cleanup: 'failed',
      before: { actual: 'creating' },
      want: { actual: 'failed', lastError: 'boom; cleanup failed, leftovers may remain (kindler delete dev)' },
    },
    {
      name: 'create cancelled',
      kind: 'create',
      state: 'cancelled',
      reason: 'cancelled by bob',
      cleanup: 'not-needed',
      before: { actual: 'creating' },
      want: { actual: 'failed', lastError: 'cancelled by bob' },
    },
    {
      name: 'create failed, removeOnFailure',
      kind: 'create',
      state: 'failed',
      reason: 'boom',
      cleanup: 'done',
      params: { removeOnFailure: true },
      want: 'removed',
    },
    {
      name: 'create failed, removeOnFailure but cleanup failed: kept',
      kind: 'create',
      state: 'failed',
      reason: 'boom',
      cleanup: 'failed',
      params: { removeOnFailure: true },
      before: { actual: 'creating' },
      want: { actual: 'failed', lastError: 'boom; cleanup failed, leftovers may remain (kindler delete dev)' },
    },
    {
      name: 'create interrupted',
      kind: 'create',
      state: 'interrupted',
      reason: 'kindler stopped while the task was running',
      before: { actual: 'creating' },
      want: { actual: 'unknown', lastError: 'kindler stopped while the task was running' },
      recheck: true,
    },
    {
      name: 'create: post step failed keeps the cluster running',
      kind: 'create',
      state: 'failed',
      reason: 'route step failed: x',
      postFailed: true,
      before: { actual: 'creating' },
      want: { actual: 'running', kubeContext: 'k3d-new', lastError: 'route step failed: x' },
    },
    { name: 'delete succeeded', kind: 'delete', state: 'succeeded', want: 'removed' },
    {
      name: 'delete failed',
      kind: 'delete',
      state: 'failed',
      reason: 'exit 1',
      before: { actual: 'deleting', desired: 'absent' },
      want: { actual: 'unknown', desired: 'absent', lastError: 'exit 1' },
      recheck: true,
    },
    {
      name: 'delete cancelled',
      kind: 'delete',
      state: 'cancelled',
      reason: 'cancelled',
      before: { actual: 'deleting' },
      want: { actual: 'unknown', lastError: 'cancelled' },
      recheck: true,
    },
    {
      name: 'delete: post step failed',
      kind: 'delete',
      state: 'failed',
      reason: 'git step failed: y',
      postFailed: true,
      before: { actual: 'deleting' },
      want: { actual: 'absent', lastError: 'git step failed: y' },
    },
    { name: 'start succeeded', kind: 'start', state: 'succeeded', before: { actual: 'stopped', lastError: 'x' }, want: { actual: 'running' } },
    {
      name: 'start interrupted',
      kind: 'start',
      state: 'interrupted',
      reason: 'r',
      before: { actual: 'stopped' },
      want: { actual: 'unknown', lastError: 'r' },
      recheck: true,
    },
    { name: 'stop succeeded', kind: 'stop', state: 'succeeded', want: { actual: 'stopped' } },
    { name: 'stop failed', kind: 'stop', state: 'failed', reason: 'r', want: { actual: 'unknown', lastError: 'r' }, recheck: true },
    { name: 'sync succeeded', kind: 'sync', state: 'succeeded', before: { actual: 'unknown' }, want: { actual: 'running' } },
    {
      name: 'sync failed: actual untouched',
      kind: 'sync',
      state: 'failed',
      reason: 'stopped',
      before: { actual: 'stopped' },
      want: { actual: 'stopped', lastError: 'stopped' },
    },
    { name: 'import-image succeeded', kind: 'import-image', state: 'succeeded', before: { lastError: 'old' }, want: {} },
    { name: 'import-image cancelled', kind: 'import-image', state: 'cancelled', reason: 'cancelled by bob', want: { lastError: 'cancelled by bob' } },
  ];
  for (const row of rows) {
    const steps = [step('create-cluster', 'succeeded'), step('wait', row.state === 'succeeded' ? 'succeeded' : 'failed')];
    const t = task({ kind: row.kind, steps, params: row.params ?? {}, ...(row.cleanup ? { cleanup: row.cleanup } : {}) });
    const c = rec(row.before);
    const done = applyTaskEnd(c, {
      task: t,
      state: row.state,
      ...(row.reason ? { reason: row.reason } : {}),
      postFailed: row.postFailed ?? false,
      result: { kubeContext: 'k3d-new' },
      at: AT,
      savedAt: LATER,
    });
    assert.equal(done.remove, row.want === 'removed', `${row.name}: remove`);
    assert.equal(done.recheck, row.recheck ?? false, `${row.name}: recheck`);
    if (row.want === 'removed') continue;
    const wantSteps = steps.map((s) => ({
      key: s.key,
      title: s.title,
      state: s.state,
      at: AT,
      taskId: 't-7',
      ...(s.state === 'failed' ? { error: row.reason } : {}),
    }));
    // The script's outcome is applied when the end is saved (after post steps); otherwise the end's time.
    const outcome = row.postFailed || (row.kind === 'create' && row.state === 'succeeded');
    const want = rec({ ...row.before, ...row.want, updatedAt: outcome ? LATER : AT, steps: wantSteps });
    if (row.state === 'succeeded') delete want.lastError;
    assert.deepEqual(c, want, row.name);
  }
});

test("applyTaskEnd: a step's own error is kept; a running step is recorded at its start", () => {
  const steps = [step('route', 'failed', 'haproxy said no'), { ...step('git', 'running'), startedAt: EARLIER }];
  const c = rec();
  applyTaskEnd(c, {
    task: task({ kind: 'sync', steps }),
    state: 'failed',
    reason: 'route step failed: haproxy said no',
    postFailed: true,
    at: AT,
    savedAt: LATER,
  });
  assert.deepEqual(c.steps, [
    { key: 'route', title: 'Title route', state: 'failed', at: AT, taskId: 't-7', error: 'haproxy said no' },
    { key: 'git', title: 'Title git', state: 'running', at: EARLIER, taskId: 't-7' },
  ]);
});

// ---- endQueuedTask: a task that never ran -> task and record ------------------------------------------

test('endQueuedTask: a queued task ends and its cluster is put back', () => {
  const rows: { name: string; t: Partial<Task>; c?: Partial<Cluster> | null; want: Partial<Cluster> | 'removed' | 'none' }[] = [
    { name: "new record's create: record removed", t: { kind: 'create', params: { newRecord: true } }, c: { actual: 'creating' }, want: 'removed' },
    {
      name: "retry's create: record failed with the reason",
      t: { kind: 'create', params: { newRecord: false } },
      c: { actual: 'creating' },
      want: { actual: 'failed', lastError: 'REASON' },
    },
    {
      name: 'delete: desired put back',
      t: { kind: 'delete', params: { prevDesired: 'stopped', prevActual: 'stopped' } },
      c: { desired: 'absent', actual: 'stopped' },
      want: { desired: 'stopped' },
    },
    { name: 'stop: desired put back', t: { kind: 'stop', params: { prevDesired: 'present' } }, c: { desired: 'stopped' }, want: { desired: 'present' } },
    { name: 'sync: nothing to put back', t: { kind: 'sync', params: {} }, c: {}, want: {} },
    { name: 'no record left', t: { kind: 'delete', params: { prevDesired: 'present' } }, c: null, want: 'none' },
  ];
  for (const state of ['cancelled', 'interrupted', 'failed'] as const) {
    for (const row of rows) {
      const t = task({ state: 'queued', ...row.t });
      const c = row.c === null ? undefined : rec(row.c);
      const got = endQueuedTask(t, c, state, 'REASON', AT);
      assert.equal(got.remove, row.want === 'removed', `${row.name} (${state})`);
      assert.deepEqual([t.state, t.finishedAt, t.error], [state, AT, { reason: 'REASON', stderrTail: [] }], `${row.name} (${state}): task`);
      if (typeof row.want === 'object') assert.deepEqual(c, rec({ ...row.c, ...row.want, updatedAt: AT }), `${row.name} (${state}): record`);
    }
  }
});

// ---- interruptAtStart: a task a crash cut short -> task and record ------------------------------------

test('interruptAtStart: unfinished tasks found at start', () => {
  const rows: { name: string; t: Partial<Task>; c?: Partial<Cluster> | null; reason: string; want: Partial<Cluster> | 'removed' | 'none' }[] = [
    {
      name: 'running create',
      t: { state: 'running', kind: 'create', params: { newRecord: true } },
      c: { actual: 'creating' },
      reason: 'kindler stopped while the task was running',
      want: { actual: 'unknown', lastError: 'task t-7 (create) was interrupted: kindler stopped while the task was running' },
    },
    {
      name: 'queued create of a new record',
      t: { state: 'queued', kind: 'create', params: { newRecord: true } },
      c: { actual: 'creating' },
      reason: 'kindler stopped before the task started',
      want: 'removed',
    },
    {
      name: 'queued create of a retry',
      t: { state: 'queued', kind: 'create', params: { newRecord: false } },
      c: { actual: 'creating' },
      reason: 'kindler stopped before the task started',
      want: { actual: 'unknown', lastError: 'task t-7 (create) was interrupted: kindler stopped before the task started' },
    },
    {
      name: 'queued stop: desired put back',
      t: { state: 'queued', kind: 'stop', params: { prevDesired: 'present' } },
      c: { desired: 'stopped' },
      reason: 'kindler stopped before the task started',
      want: { desired: 'present', actual: 'unknown', lastError: 'task t-7 (stop) was interrupted: kindler stopped before the task started' },
    },
    {
      name: 'running delete: desired stays absent',
      t: { state: 'running', kind: 'delete', params: { prevDesired: 'present' } },
      c: { desired: 'absent', actual: 'deleting' },
      reason: 'kindler stopped while the task was running',
      want: { actual: 'unknown', lastError: 'task t-7 (delete) was interrupted: kindler stopped while the task was running' },
    },
    { name: 'record gone', t: { state: 'running', kind: 'start' }, c: null, reason: 'kindler stopped while the task was running', want: 'none' },
  ];
  for (const row of rows) {
    const t = task({ steps: [step('a', 'succeeded'), step('b', 'running')], ...row.t });
    const c = row.c === null ? undefined : rec(row.c);
    const got = interruptAtStart(t, c, AT);
    assert.equal(got.remove, row.want === 'removed', row.name);
    assert.deepEqual([t.state, t.finishedAt, t.error], ['interrupted', AT, { reason: row.reason, stderrTail: [] }], `${row.name}: task`);
    assert.deepEqual(
      t.steps.map((s) => [s.state, s.finishedAt]),
      [
        ['succeeded', AT],
        ['failed', AT],
      ],
      `${row.name}: steps`,
    );
    if (typeof row.want === 'object') assert.deepEqual(c, rec({ ...row.c, ...row.want, updatedAt: AT }), `${row.name}: record`);
  }
});

// ---- cutShortCreate: a create a shutdown stopped -> finished at start, or not -----------------------------

test("cutShortCreate: which record's last create is finished (cleaned up) at start", () => {
  const made = [step('create-cluster', 'succeeded'), step('wait-ready', 'failed')];
  const cut = (over: Partial<Task> = {}) => task({ state: 'interrupted', steps: made, ...over });
  const rows: { name: string; c: Partial<Cluster>; last?: Task; want: boolean }[] = [
    {
      name: 'interrupted after making the cluster, its cleanup failed',
      c: { actual: 'unknown', lastTaskId: 't-7' },
      last: cut({ cleanup: 'failed' }),
      want: true,
    },
    { name: 'interrupted after making the cluster, cleanup not known (killed)', c: { actual: 'unknown', lastTaskId: 't-7' }, last: cut(), want: true },
    { name: 'its own cleanup was done', c: { actual: 'unknown', lastTaskId: 't-7' }, last: cut({ cleanup: 'done' }), want: false },
    {
      name: 'stopped before it made the cluster',
      c: { actual: 'unknown', lastTaskId: 't-7' },
      last: cut({ steps: [step('preflight', 'failed')] }),
      want: false,
    },
    { name: 'a failed create (not interrupted)', c: { actual: 'unknown', lastTaskId: 't-7' }, last: cut({ state: 'failed', cleanup: 'failed' }), want: false },
    { name: 'an interrupted start', c: { actual: 'unknown', lastTaskId: 't-7' }, last: cut({ kind: 'start' }), want: false },
    { name: "not the record's last task", c: { actual: 'unknown', lastTaskId: 't-9' }, last: cut(), want: false },
    { name: 'the record was re-checked since', c: { actual: 'failed', lastTaskId: 't-7' }, last: cut(), want: false },
    { name: 'no last task', c: { actual: 'unknown' }, want: false },
  ];
  for (const row of rows) assert.equal(cutShortCreate(rec(row.c), row.last), row.want ? row.last : null, row.name);
});

// ---- applyRecheck: what the provider reported -> the record -------------------------------------------

test("applyRecheck: the provider's answer (or none) against the record", () => {
  const st = (state: ProviderStatus['state'], nodes = 2, running = 2): ProviderStatus => ({ state, nodes, running });
  const rows: {
    name: string;
    c?: Partial<Cluster>;
    status: ProviderStatus | null;
    problem?: string;
    create?: Pick<Task, 'id' | 'cleanup'>;
    interrupted?: Pick<Task, 'id' | 'kind'>;
    want: Partial<Cluster> | 'removed';
  }[] = [
    {
      name: 'no answer',
      status: null,
      problem: 'status check of "dev" failed: timeout',
      want: { actual: 'unknown', lastError: 'status check of "dev" failed: timeout' },
    },
    { name: 'running', c: { actual: 'unknown', lastError: 'x' }, status: st('running'), want: { actual: 'running', lastError: 'x' } },
    { name: 'stopped', status: st('stopped'), want: { actual: 'stopped' } },
    { name: 'degraded', status: st('degraded', 3, 1), want: { actual: 'unknown', lastError: 'degraded: 1 of 3 nodes running' } },
    {
      name: 'degraded, meant absent (a delete cut short)',
      c: { desired: 'absent', actual: 'unknown' },
      status: st('degraded', 1, 1),
      want: {
        actual: 'failed',
        lastError: 'a delete did not finish; the provider reports the cluster degraded, 1 of 1 nodes running (kindler delete dev removes it)',
      },
    },
    {
      name: 'degraded after a task was cut short (a queued delete put desired back)',
      c: { actual: 'unknown' },
      status: st('degraded', 1, 1),
      interrupted: { id: 't-9', kind: 'delete' },
      want: {
        actual: 'failed',
        lastError:
          'delete task t-9 was interrupted; the provider reports the cluster degraded, 1 of 1 nodes running (kindler start dev or a reconcile brings it up; kindler delete dev removes it)',
      },
    },
    {
      name: 'running after a task was cut short',
      c: { actual: 'unknown', lastError: 'x' },
      status: st('running'),
      interrupted: { id: 't-9', kind: 'stop' },
      want: { actual: 'running', lastError: 'x' },
    },
    { name: 'absent, meant absent: removed', c: { desired: 'absent', actual: 'deleting' }, status: st('absent'), want: 'removed' },
    { name: 'absent, meant present', c: { actual: 'unknown' }, status: st('absent'), want: { actual: 'absent' } },
    {
      name: 'interrupted create, nothing left, cleaned',
      c: { actual: 'unknown' },
      status: st('absent'),
      create: { id: 't-3', cleanup: 'done' },
      want: { actual: 'absent', lastError: 'create task t-3 was interrupted; what it had made was removed; run create again to retry' },
    },
    {
      name: 'interrupted create, nothing left',
      c: { actual: 'unknown' },
      status: st('absent'),
      create: { id: 't-3' },
      want: { actual: 'absent', lastError: 'create task t-3 was interrupted; run create again to retry' },
    },
    {
      name: 'interrupted create, cluster there',
      c: { actual: 'unknown' },
      status: st('running'),
      create: { id: 't-3', cleanup: 'failed' },
      want: { actual: 'failed', lastError: 'create task t-3 was interrupted; the provider reports the cluster running (kindler delete dev removes it)' },
    },
    { name: 'interrupted create, but meant absent and gone', c: { desired: 'absent' }, status: st('absent'), create: { id: 't-3' }, want: 'removed' },
  ];
  for (const row of rows) {
    const c = rec(row.c);
    const got = applyRecheck(c, row.status, row.problem, row.create ?? null, AT, row.interrupted ?? null);
    assert.equal(got.remove, row.want === 'removed', row.name);
    if (row.want !== 'removed') assert.deepEqual(c, rec({ ...row.c, ...row.want, updatedAt: AT }), row.name);
  }
});

// ---- create requests and records ---------------------------------------------------------------------

const DEFAULTS = { provider: 'k3d', servers: 1, agents: 0 } as const;

test('resolveCreateRequest: given, else recorded, else the defaults', () => {
  const rows: { name: string; input: CreateInput; existing?: Cluster; want: Pick<CreateRequest, 'provider' | 'servers' | 'agents'> }[] = [
    { name: 'new, nothing given', input: { name: 'dev' }, want: { provider: 'k3d', servers: 1, agents: 0 } },
    { name: 'new, all given', input: { name: 'dev', provider: 'kind', servers: 3, agents: 2 }, want: { provider: 'kind', servers: 3, agents: 2 } },
    {
      name: 'retry, nothing given',
      input: { name: 'dev' },
      existing: rec({ provider: 'kind', servers: 3, agents: 4 }),
      want: { provider: 'kind', servers: 3, agents: 4 },
    },
    {
      name: 'retry, agents 0 given (0 is given, not missing)',
      input: { name: 'dev', agents: 0 },
      existing: rec({ agents: 4 }),
      want: { provider: 'k3d', servers: 1, agents: 0 },
    },
  ];
  for (const row of rows) assert.deepEqual(resolveCreateRequest(row.input, row.existing, DEFAULTS), { ...row.input, ...row.want }, row.name);
});

test('retryChanges: a retry is refused unless failed or absent and of the same provider; else the settings it changes', () => {
  const failedRec = rec({ actual: 'failed', image: 'img:1', subnet: '10.5.0.0/16', options: { route: true, register: ['portainer'] } });
  const rows: { name: string; existing: Cluster; input: CreateInput; want: string[] | { kind: string; message: string } }[] = [
    { name: 'running: refused', existing: rec(), input: { name: 'dev' }, want: { kind: 'conflict', message: 'name: cluster "dev" already exists (running)' } },
    {
      name: 'creating: refused',
      existing: rec({ actual: 'creating' }),
      input: { name: 'dev' },
      want: { kind: 'conflict', message: 'name: cluster "dev" already exists (creating)' },
    },
    {
      name: 'other provider: refused',
      existing: rec({ actual: 'absent' }),
      input: { name: 'dev', provider: 'kind' },
      want: {
        kind: 'conflict',
        message: 'provider: cluster "dev" is recorded as k3d; a retry keeps its provider (omit --provider, or delete it first to change provider)',
      },
    },
    { name: 'nothing changed', existing: failedRec, input: { name: 'dev' }, want: [] },
    {
      name: 'same values given: no change',
      existing: failedRec,
      input: { name: 'dev', servers: 1, agents: 0, image: 'img:1', httpPort: 18080, subnet: '10.5.0.0/16', options: { route: true, register: ['portainer'] } },
      want: [],
    },
    {
      name: 'everything changed',
      existing: failedRec,
      input: {
        name: 'dev',
        servers: 3,
        agents: 1,
        image: 'img:2',
        httpPort: 1,
        httpsPort: 2,
        apiPort: 3,
        subnet: '10.6.0.0/16',
        ttlMs: 1000,
        options: { route: false, register: [] },
      },
      want: ['servers', 'agents', 'image', 'http-port', 'https-port', 'api-port', 'subnet', 'ttl', 'route', 'register'],
    },
    { name: 'ttl given always counts', existing: failedRec, input: { name: 'dev', ttlMs: 5 }, want: ['ttl'] },
  ];
  for (const row of rows) {
    const req = resolveCreateRequest(row.input, row.existing, DEFAULTS);
    if (Array.isArray(row.want)) assert.deepEqual(retryChanges(row.input, req, row.existing), row.want, row.name);
    else
      assert.deepEqual(
        thrown(() => retryChanges(row.input, req, row.existing)),
        row.want,
        row.name,
      );
  }
});

test('createExpiry: given ttl, recorded expiry, the default, or a refused past expiry', () => {
  const NOW = Date.parse(AT);
  const later = new Date(NOW + 3_600_000).toISOString();
  const rows: { name: string; ttlMs?: number; existing?: Cluster; def?: number; want: string | undefined | { kind: string; message: string } }[] = [
    { name: 'new, no ttl, no default', want: undefined },
    { name: 'new, default applies', def: 60_000, want: new Date(NOW + 60_000).toISOString() },
    { name: 'new, given ttl wins over the default', ttlMs: 1000, def: 60_000, want: new Date(NOW + 1000).toISOString() },
    { name: 'retry keeps its recorded expiry', existing: rec({ actual: 'failed', expiresAt: later }), def: 60_000, want: later },
    { name: 'retry without expiry ignores the default', existing: rec({ actual: 'failed' }), def: 60_000, want: undefined },
    { name: 'retry with a given ttl', existing: rec({ actual: 'failed', expiresAt: later }), ttlMs: 5000, want: new Date(NOW + 5000).toISOString() },
    {
      name: 'retry of an expired record: refused',
      existing: rec({ actual: 'failed', expiresAt: EARLIER }),
      want: { kind: 'conflict', message: `ttl: cluster "dev" expired at ${EARLIER}; give --ttl to retry it with a new expiry, or delete it` },
    },
    {
      name: 'retry expiring exactly now: refused',
      existing: rec({ actual: 'absent', expiresAt: AT }),
      want: { kind: 'conflict', message: `ttl: cluster "dev" expired at ${AT}; give --ttl to retry it with a new expiry, or delete it` },
    },
    { name: 'retry of an expired record with a ttl', existing: rec({ actual: 'failed', expiresAt: EARLIER }), ttlMs: 1, want: new Date(NOW + 1).toISOString() },
  ];
  for (const row of rows) {
    const req = { name: 'dev', ...(row.ttlMs !== undefined ? { ttlMs: row.ttlMs } : {}) };
    const run = () => createExpiry(req, row.existing, () => row.def, NOW);
    if (row.want !== undefined && typeof row.want === 'object') assert.deepEqual(thrown(run), row.want, row.name);
    else assert.equal(run(), row.want, row.name);
  }
});

test('checkQuota: new clusters per user, retries never counted', () => {
  const others = [rec({ name: 'a' }), rec({ name: 'b' }), rec({ name: 'c', owner: 'bob' })];
  const rows: { user: string; max: number; isNew: boolean; want: string | null }[] = [
    { user: 'alice', max: 0, isNew: true, want: null },
    { user: 'alice', max: 3, isNew: true, want: null },
    { user: 'alice', max: 2, isNew: true, want: 'quota: alice already has 2 clusters (limit 2); delete one first' },
    { user: 'alice', max: 2, isNew: false, want: null },
    { user: 'bob', max: 1, isNew: true, want: 'quota: bob already has 1 cluster (limit 1); delete one first' },
    { user: 'carol', max: 1, isNew: true, want: null },
  ];
  for (const row of rows) {
    const got = thrown(() => checkQuota(others, row.user, row.max, row.isNew));
    assert.deepEqual(got, row.want === null ? null : { kind: 'conflict', message: row.want }, `${row.user} max ${row.max} new ${row.isNew}`);
  }
});

test('subnetClash: the first other cluster whose subnet overlaps', () => {
  const others = [rec({ name: 'none' }), rec({ name: 'a', subnet: '10.10.0.0/16' }), rec({ name: 'b', subnet: '10.20.5.0/24' })];
  const rows: [string, string | undefined][] = [
    ['10.30.0.0/16', undefined],
    ['10.10.0.0/16', 'a'],
    ['10.10.7.0/24', 'a'],
    ['10.0.0.0/8', 'a'],
    ['10.20.5.128/25', 'b'],
    ['10.20.4.0/24', undefined],
    ['10.11.0.0/16', undefined],
  ];
  for (const [subnet, want] of rows) assert.equal(subnetClash(subnet, others)?.name, want, subnet);
  assert.equal(subnetClash('10.10.0.0/16', []), undefined, 'no others');
});

test('buildCreateRecord: a new record, and a retry of an existing one', () => {
  const ports = { httpPort: 20080, httpsPort: 20443, apiPort: 26443 };
  const base = (over: Partial<CreateRecordFacts> = {}): CreateRecordFacts => ({
    req: { name: 'dev', provider: 'k3d', servers: 1, agents: 0 },
    ports,
    owner: 'bob',
    kubeconfig: '/d/kubeconfig/dev.yaml',
    routes: { enabled: true, baseDomain: 'k.test' },
    at: AT,
    ...over,
  });
  const fresh: Cluster = {
    name: 'dev',
    provider: 'k3d',
    servers: 1,
    agents: 0,
    ...ports,
    owner: 'bob',
    createdAt: AT,
    desired: 'present',
    actual: 'creating',
    kubeContext: 'k3d-dev',
    kubeconfig: '/d/kubeconfig/dev.yaml',
    domain: 'dev.k.test',
    options: { route: true, register: [] },
    updatedAt: AT,
  };
  const was = rec({
    actual: 'failed',
    image: 'img:1',
    subnet: '10.5.0.0/16',
    ingressNodePort: 30080,
    options: { route: false, register: ['argocd'] },
    expiresAt: AT,
    lastError: 'boom',
    steps: [],
  });
  const rows: { name: string; f: CreateRecordFacts; want: Cluster }[] = [
    { name: 'new, defaults', f: base(), want: fresh },
    { name: 'new, routes off in config', f: base({ routes: { enabled: false, baseDomain: 'k.test' } }), want: (({ domain: _d, ...c }) => c)(fresh) },
    {
      name: 'new, --no-route and --register',
      f: base({ req: { name: 'dev', provider: 'k3d', servers: 1, agents: 0, options: { route: false, register: ['portainer'] } } }),
      want: (({ domain: _d, ...c }) => ({ ...c, options: { route: false, register: ['portainer' as const] } }))(fresh),
    },
    {
      name: 'new kind cluster with everything',
      f: base({
        req: { name: 'dev', provider: 'kind', servers: 3, agents: 2, image: 'kindest/node:v1', subnet: '10.9.0.0/16', ingressNodePort: 31000 },
        expiresAt: EARLIER,
      }),
      want: {
        ...fresh,
        provider: 'kind',
        servers: 3,
        agents: 2,
        image: 'kindest/node:v1',
        subnet: '10.9.0.0/16',
        expiresAt: EARLIER,
        kubeContext: 'kind-dev',
        ingressNodePort: 31000,
      },
    },
    {
      name: 'retry: recorded settings, owner and creation kept; lastError and steps dropped',
      f: base({ req: { name: 'dev', provider: 'k3d', servers: 1, agents: 0 }, existing: was, expiresAt: AT }),
      want: {
        ...fresh,
        image: 'img:1',
        subnet: '10.5.0.0/16',
        owner: 'alice',
        createdAt: EARLIER,
        expiresAt: AT,
        ingressNodePort: 30080,
        options: { route: false, register: ['argocd'] },
        domain: undefined,
      } as unknown as Cluster,
    },
    {
      name: 'retry with new settings given',
      f: base({ req: { name: 'dev', provider: 'k3d', servers: 2, agents: 1, image: 'img:2', subnet: '10.6.0.0/16', options: { route: true } }, existing: was }),
      want: {
        ...fresh,
        servers: 2,
        agents: 1,
        image: 'img:2',
        subnet: '10.6.0.0/16',
        owner: 'alice',
        createdAt: EARLIER,
        ingressNodePort: 30080,
        options: { route: true, register: ['argocd'] },
      },
    },
  ];
  for (const row of rows) {
    const want = JSON.parse(JSON.stringify(row.want)) as Cluster;
    assert.deepEqual(buildCreateRecord(row.f), want, row.name);
  }
});

test('createParams and retryLine: what a create task carries and what a retry logs first', () => {
  const was = rec({ actual: 'failed', image: 'img:1', options: { route: true, register: ['portainer'] } });
  const same = { ...was, actual: 'creating' as const };
  const rows: { name: string; c: Cluster; existing?: Cluster; removeOnFailure?: boolean; want: Record<string, string | number | boolean> }[] = [
    { name: 'new', c: rec(), want: { newRecord: true } },
    { name: 'new, removeOnFailure', c: rec(), removeOnFailure: true, want: { newRecord: true, removeOnFailure: true } },
    {
      name: 'retry as recorded',
      c: same,
      existing: was,
      want: {
        newRecord: false,
        retry:
          'retrying dev with its recorded settings: provider k3d; servers 1; agents 0; image img:1; ports http 18080, https 18443, api 16443; subnet (none); expires never; route on; register portainer',
      },
    },
    {
      name: 'retry with changes',
      c: { ...same, servers: 3, image: undefined, apiPort: 17000, subnet: '10.1.0.0/16', expiresAt: AT, options: { route: false, register: [] } },
      existing: was,
      removeOnFailure: true,
      want: {
        newRecord: false,
        removeOnFailure: true,
        retry: `retrying dev with its recorded settings: provider k3d; servers 3; agents 0; image (the provider's default); ports http 18080, https 18443, api 17000; subnet 10.1.0.0/16; expires ${AT}; route off (--no-route); register none (given now: servers, image, api-port, subnet, ttl, route, register)`,
      },
    },
  ];
  for (const row of rows) assert.deepEqual(createParams(row.c, row.existing, row.removeOnFailure), row.want, row.name);
  assert.equal(retryLine(same, was), rows[2]!.want.retry);
});

test('buildImportedRecord: an import-csv row becomes an unknown record, routed unless the row says not', () => {
  const ports = { httpPort: 20080, httpsPort: 20443, apiPort: 26443 };
  const rows: { name: string; req: CreateRequest; want: Partial<Cluster> }[] = [
    { name: 'plain row', req: { name: 'old1', provider: 'k3d', servers: 3, agents: 2 }, want: { options: { route: true, register: [] } } },
    {
      name: 'kind row with subnet and ingress port',
      req: { name: 'old1', provider: 'kind', servers: 1, agents: 0, subnet: '10.7.0.0/16', ingressNodePort: 30080 },
      want: { provider: 'kind', kubeContext: 'kind-old1', subnet: '10.7.0.0/16', ingressNodePort: 30080, options: { route: true, register: [] } },
    },
    {
      name: 'no route, registered',
      req: { name: 'old1', provider: 'k3d', servers: 1, agents: 0, options: { route: false, register: ['portainer'] } },
      want: { options: { route: false, register: ['portainer'] } },
    },
  ];
  for (const row of rows) {
    const want = {
      name: 'old1',
      provider: 'k3d',
      servers: 1,
      agents: 0,
      ...ports,
      owner: 'root',
      createdAt: AT,
      desired: 'present',
      actual: 'unknown',
      kubeContext: 'k3d-old1',
      kubeconfig: '/d/old1.yaml',
      updatedAt: AT,
      ...row.want,
    };
    assert.deepEqual(buildImportedRecord(row.req, ports, 'root', '/d/old1.yaml', AT), want, row.name);
  }
});

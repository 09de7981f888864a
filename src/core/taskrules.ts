/**
 * What a task's run does to the task and to its cluster record: the rules the engine applies when a script
 * ends (its outcome, the create's cleanup, the record's new state and lastError), when a queued task ends
 * without running, when a start finds a task a crash cut short, and when a re-check hears from the provider.
 * Pure: the caller passes the facts and the time; the functions change only the records they are handed.
 */
import { cleanLine } from './text.js';
import { pickErrorLine } from './errorline.js';
import type { Cluster, Task, TaskKind, TaskState } from './types.js';

/** How a script's run ended (the runner's result, as far as the rules need it). */
export interface RunEnd {
  exitCode: number | null;
  signal: string | null;
  /** Why the run was stopped from outside, if it was. */
  stopped: 'cancel' | 'timeout' | 'shutdown' | 'failed' | null;
  spawnError?: string;
}

/** What the script said and what happened around it while it ran. */
export interface RunFacts {
  kind: TaskKind;
  /** The task's notes (a cancel records "cancel requested by USER" there). */
  notes: readonly string[];
  /** The script's `::kindler:error` text, if it printed one. */
  errorText?: string;
  /** The script's result line. */
  result?: Record<string, unknown>;
  /** Why kindler stopped the task itself (its log could not be written). */
  abort?: string;
  /** The task kind's timeout, in seconds (named in a timeout's reason). */
  timeoutSeconds: number;
  /** The last stderr lines. */
  stderrTail: readonly string[];
}

/** A run's outcome before the post steps: the task's end state and, unless it succeeded, why. */
export function runOutcome(r: RunEnd, f: RunFacts): { state: TaskState; reason?: string } {
  if (r.spawnError) return { state: 'failed', reason: `the script could not run: ${r.spawnError}` };
  if (r.stopped === 'cancel') {
    return {
      state: 'cancelled',
      reason: f.notes.find((n) => n.startsWith('cancel requested by'))?.replace('cancel requested by', 'cancelled by') ?? 'cancelled',
    };
  }
  if (r.stopped === 'timeout') return { state: 'failed', reason: `timed out after ${f.timeoutSeconds}s${f.errorText ? ` (${f.errorText})` : ''}` };
  if (r.stopped === 'shutdown') return { state: 'interrupted', reason: 'kindler stopped while the task was running' };
  if (f.abort) return { state: 'failed', reason: f.abort };
  if (r.exitCode === 0 && f.kind === 'sync' && f.result?.state !== 'running') {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the script's value as it printed it (the reason's text is unchanged)
    return { state: 'failed', reason: `the provider reports the cluster ${String(f.result?.state ?? 'unknown')}; start it first` };
  }
  if (r.exitCode === 0 && (f.kind !== 'create' || f.result)) return { state: 'succeeded' };
  if (r.exitCode === 0) return { state: 'failed', reason: 'the script exited 0 but printed no result line' };
  // Without an error marker, the stderr line that says what failed is the best reason there is.
  const lastErr = pickErrorLine([...f.stderrTail]);
  return {
    state: 'failed',
    reason:
      f.errorText ??
      `${r.signal ? `the script was killed by ${r.signal}` : `the script exited with code ${r.exitCode}`}${lastErr ? `: ${cleanLine(lastErr, 300)}` : ''}`,
  };
}

/**
 * A create that did not succeed: what its cleanup is recorded as, or `run` when kindler must run the
 * idempotent delete script itself (the script reached the cluster's creation and did not clean up). Null
 * for a create that succeeded (nothing to clean up); undefined: not known (an interrupted create).
 */
export function createCleanup(
  state: TaskState,
  scriptCleanup: 'begin' | 'done' | 'failed' | undefined,
  reachedCreate: boolean,
): Task['cleanup'] | 'run' | null {
  if (state === 'succeeded') return null;
  if (scriptCleanup === 'done') return 'done';
  if (!reachedCreate) return 'not-needed';
  if (state === 'interrupted') return scriptCleanup === 'failed' ? 'failed' : undefined;
  return 'run';
}

/** Records what a succeeded script did to the cluster (before post steps, which read it). */
export function applyScriptOutcome(c: Cluster, kind: TaskKind, result: Record<string, unknown> | undefined, at: string): void {
  c.updatedAt = at;
  if (kind === 'create' || kind === 'start' || kind === 'sync') {
    c.actual = 'running';
    if (typeof result?.nodeAddress === 'string' && result.nodeAddress) c.nodeAddress = result.nodeAddress;
    if (kind === 'create' && typeof result?.kubeContext === 'string') c.kubeContext = result.kubeContext;
  } else if (kind === 'stop') c.actual = 'stopped';
  else if (kind === 'delete') c.actual = 'absent';
}

/** A task's end, as the cluster record takes it. */
export interface TaskEnd {
  task: Pick<Task, 'id' | 'kind' | 'steps' | 'cleanup' | 'params'>;
  state: TaskState;
  reason?: string;
  /** The script succeeded and a later step (a post step, the log) failed: the provider's work stays recorded. */
  postFailed: boolean;
  result?: Record<string, unknown>;
  /** When the task's end was reached (the record's updatedAt, unless the script's outcome is applied). */
  at: string;
  /** When the end is saved: the record's updatedAt when the script's outcome is applied (after any post steps). */
  savedAt: string;
}

/**
 * Applies a task's end to its cluster record: lastError, the per-step record, and the new actual state.
 * `remove`: the record goes (a succeeded delete, a failed create asked to leave nothing); `recheck`: ask the
 * provider what is there now (the task ended with the cluster in an unknown state).
 */
export function applyTaskEnd(c: Cluster, e: TaskEnd): { remove: boolean; recheck: boolean } {
  const t = e.task;
  const { state, reason } = e;
  c.updatedAt = e.at;
  if (state === 'succeeded') delete c.lastError;
  else c.lastError = reason;
  c.steps = t.steps.map((st) => ({
    key: st.key,
    title: st.title,
    state: st.state,
    at: st.finishedAt ?? st.startedAt,
    taskId: t.id,
    ...(st.state === 'failed' ? { error: st.error ?? reason } : {}),
  }));
  const done = { remove: false, recheck: false };
  if (e.postFailed) {
    // The provider work is done and stays; only a later step failed (a retry can finish it).
    applyScriptOutcome(c, t.kind, e.result, e.savedAt);
    return done;
  }
  switch (t.kind) {
    case 'create':
      if (state === 'succeeded') applyScriptOutcome(c, t.kind, e.result, e.savedAt);
      else if (state === 'interrupted') {
        c.actual = 'unknown';
        done.recheck = true;
      } else if (t.params?.removeOnFailure && t.cleanup !== 'failed') done.remove = true;
      else {
        c.actual = 'failed';
        if (t.cleanup === 'failed') c.lastError = `${reason}; cleanup failed, leftovers may remain (kindler delete ${c.name})`;
      }
      break;
    case 'delete':
      if (state === 'succeeded') done.remove = true;
      else {
        c.actual = 'unknown';
        done.recheck = true;
      }
      break;
    case 'start':
    case 'stop':
      if (state === 'succeeded') c.actual = t.kind === 'start' ? 'running' : 'stopped';
      else {
        c.actual = 'unknown';
        done.recheck = true;
      }
      break;
    case 'sync':
      if (state === 'succeeded') c.actual = 'running';
      break;
    case 'import-image':
      break;
  }
  return done;
}

/**
 * Ends a task that never started (cancelled, or stopped by shutdown) and puts its cluster back the way it
 * was; `remove`: the record goes (a new record's create never ran).
 */
export function endQueuedTask(t: Task, c: Cluster | undefined, state: TaskState, reason: string, at: string): { remove: boolean } {
  t.state = state;
  t.finishedAt = at;
  t.error = { reason, stderrTail: [] };
  if (!c) return { remove: false };
  let remove = false;
  if (t.kind === 'create') {
    if (t.params?.newRecord) remove = true;
    else {
      c.actual = 'failed';
      c.lastError = reason;
    }
  } else if (t.params?.prevDesired) {
    c.desired = t.params.prevDesired as Cluster['desired'];
  }
  c.updatedAt = at;
  return { remove };
}

/**
 * At start, a task a previous kindler left unfinished: it ends `interrupted`, its running step fails, and
 * its cluster is put back (a queued task) or marked unknown until re-checked; `remove`: a new record whose
 * create never started goes.
 */
export function interruptAtStart(t: Task, c: Cluster | undefined, at: string): { remove: boolean } {
  const wasRunning = t.state === 'running';
  t.state = 'interrupted';
  t.finishedAt = at;
  t.error = { reason: wasRunning ? 'kindler stopped while the task was running' : 'kindler stopped before the task started', stderrTail: [] };
  const last = t.steps[t.steps.length - 1];
  if (last && last.state === 'running') {
    last.state = 'failed';
    last.finishedAt = at;
  }
  if (!c) return { remove: false };
  if (!wasRunning && t.kind === 'create' && t.params?.newRecord) return { remove: true };
  if (!wasRunning && t.params?.prevDesired) c.desired = t.params.prevDesired as Cluster['desired'];
  c.actual = 'unknown';
  c.lastError = `task ${t.id} (${t.kind}) was interrupted: ${t.error.reason}`;
  c.updatedAt = at;
  return { remove: false };
}

/**
 * The create to finish at start for a record no unfinished task names: its last task, when that is a create
 * that kindler stopped (shutdown) after it had made the cluster and whose cleanup is not known to be done.
 * Its re-check cleans up what the create made, as for a create a crash cut short; null otherwise.
 */
export function cutShortCreate(c: Cluster, last: Task | undefined): Task | null {
  if (!last || last.id !== c.lastTaskId || last.kind !== 'create' || last.state !== 'interrupted' || c.actual !== 'unknown') return null;
  return last.cleanup !== 'done' && last.steps.some((st) => st.key === 'create-cluster') ? last : null;
}

/** What the provider reported for a cluster (cluster.sh status). */
export interface ProviderStatus {
  state: 'running' | 'stopped' | 'degraded' | 'absent';
  nodes: number;
  running: number;
}

/**
 * Applies a re-check to the record: what the provider reported, or (status null) why it could not be asked.
 * `interruptedCreate` is the create a crash or shutdown cut short. `remove`: a record meant to be absent is.
 */
export function applyRecheck(
  r: Cluster,
  status: ProviderStatus | null,
  problem: string | undefined,
  interruptedCreate: Pick<Task, 'id' | 'cleanup'> | null,
  at: string,
  /** The task a crash or shutdown cut short on this cluster, if any (of any kind). */
  interrupted: Pick<Task, 'id' | 'kind'> | null = null,
): { remove: boolean } {
  r.updatedAt = at;
  if (!status) {
    r.actual = 'unknown';
    r.lastError = problem;
    return { remove: false };
  }
  if (status.state === 'absent' && r.desired === 'absent') return { remove: true };
  if (interruptedCreate) {
    r.actual = status.state === 'absent' ? 'absent' : 'failed';
    if (status.state === 'absent') {
      r.lastError = `create task ${interruptedCreate.id} was interrupted${interruptedCreate.cleanup === 'done' ? '; what it had made was removed' : ''}; run create again to retry`;
      return { remove: false };
    }
    r.lastError = `create task ${interruptedCreate.id} was interrupted; the provider reports the cluster ${status.state} (kindler delete ${r.name} removes it)`;
    return { remove: false };
  }
  if (status.state === 'degraded' && (r.desired === 'absent' || interrupted)) {
    // A task cut short (or a delete that did not finish) left part of the cluster: a settled, visible
    // failure, never a lasting "unknown".
    r.actual = 'failed';
    const report = `the provider reports the cluster degraded, ${status.running} of ${status.nodes} nodes running`;
    r.lastError =
      r.desired === 'absent'
        ? `a delete did not finish; ${report} (kindler delete ${r.name} removes it)`
        : `${interrupted!.kind} task ${interrupted!.id} was interrupted; ${report} (kindler start ${r.name} or a reconcile brings it up; kindler delete ${r.name} removes it)`;
    return { remove: false };
  }
  r.actual = status.state === 'degraded' ? 'unknown' : status.state;
  if (status.state === 'degraded') r.lastError = `degraded: ${status.running} of ${status.nodes} nodes running`;
  return { remove: false };
}

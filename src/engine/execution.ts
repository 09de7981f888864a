/**
 * Running tasks: the queue under the concurrency limit (`pump`), a task's script with its log and markers,
 * then its end: the outcome (core/taskrules), a failed create's cleanup, the post steps, and the record
 * change, saved whatever happens. A task always leaves `running`, frees its cluster and starts the next one.
 */
import { parseMarker, progressAt } from '../core/markers.js';
import { applyScriptOutcome, applyTaskEnd, createCleanup, runOutcome } from '../core/taskrules.js';
import { cleanLine, sanitizeLine } from '../core/text.js';
import { isTerminal, type Task, type TaskStep } from '../core/types.js';
import { processStart } from '../os/process.js';
import { scriptFor } from '../provision/scripts.js';
import { clone, now, type EngineContext, type Running } from './context.js';
import { cleanupCreate } from './recovery.js';
import { runScript, type Run, type RunResult } from '../os/runner.js';

const STDERR_TAIL = 10;

export class Execution {
  constructor(private readonly ctx: EngineContext) {}

  /** Starts queued tasks while a slot is free (and kindler is not stopping). */
  pump(): void {
    const ctx = this.ctx;
    while (!ctx.stopping && ctx.running.size < ctx.cfg.concurrency && ctx.queue.length > 0) {
      const id = ctx.queue.shift()!;
      const t = ctx.store.data.tasks.find((x) => x.id === id);
      if (!t || t.state !== 'queued') continue;
      this.execute(t);
    }
  }

  private execute(t: Task): void {
    const ctx = this.ctx;
    const cfg = ctx.cfg;
    const c = ctx.cluster(t.cluster);
    if (!c) {
      void this.finishWithoutRun(t, `cluster "${t.cluster}" no longer exists`);
      return;
    }
    const log = ctx.openLog(t);
    t.state = 'running';
    t.startedAt = now();
    c.actual = t.kind === 'create' ? 'creating' : t.kind === 'delete' ? 'deleting' : c.actual;
    c.updatedAt = now();
    const call = scriptFor(cfg, t.kind, c, t.params);
    log.add(`[kindler] ${t.kind} ${c.name} (${c.provider}) started by ${t.user} as task ${t.id}`);
    if (typeof t.params?.retry === 'string') log.add(`[kindler] ${t.params.retry}`);
    const post = (ctx.opts.postSteps ?? []).filter((p) => p.applies(t.kind, c));
    const state: Running = { task: t, log, stderrTail: [], reachedCreate: false, post, run: undefined as unknown as Run, ended: Promise.resolve() };
    state.run = runScript({
      script: call.script,
      args: call.args,
      cwd: cfg.scriptsDir,
      env: ctx.opts.scriptEnv,
      timeoutMs: cfg.timeouts[t.kind] * 1000,
      graceMs: cfg.cancelGraceSeconds * 1000,
      spoolDir: ctx.logDir,
      onLine: (line, stream) => this.onLine(state, line, stream),
      // Plain stdout lines in bulk skip onLine: none of them is a marker or needs sanitizing.
      onBulk: (b) => log.addBulk(b),
      bulkTail: cfg.logRingLines,
      onStart: (pid) => {
        t.params = { ...t.params, pid, pidStart: processStart(pid) ?? '' };
      },
    });
    ctx.running.set(t.id, state);
    ctx.log('info', `task ${t.id} running: ${t.kind} ${c.name}`);
    ctx.emitCluster(c.name);
    ctx.persist(t);
    // A runner error still ends the task (failed, with the reason); an error while recording the end
    // is logged loudly rather than handled twice.
    state.ended = state.run.done
      .then(
        (r) => this.finish(state, r),
        (e: Error) => this.finish(state, { exitCode: null, signal: null, stopped: null, killed: false, spawnError: `internal error: ${e.message}` }),
      )
      .catch((e: Error) => ctx.log('error', `task ${t.id}: could not record its end: ${e.stack ?? e.message}`));
  }

  private async finishWithoutRun(t: Task, reason: string): Promise<void> {
    await this.ctx.save(`task ${t.id} failed (${reason})`, (d) => this.ctx.endQueued(d, t, 'failed', reason));
    this.ctx.emitTask(t);
    this.pump();
  }

  private onLine(s: Running, raw: string, stream: 'stdout' | 'stderr'): void {
    const t = s.task;
    const line = cleanLine(raw);
    const m = stream === 'stdout' ? parseMarker(line) : null;
    if (!m) {
      s.log.add(line);
      if (stream === 'stderr' && line.trim()) {
        s.stderrTail.push(line);
        if (s.stderrTail.length > STDERR_TAIL) s.stderrTail.shift();
      }
      return;
    }
    switch (m.type) {
      case 'step': {
        const at = now();
        const prev = t.steps[t.steps.length - 1];
        if (prev && prev.state === 'running') {
          prev.state = 'succeeded';
          prev.finishedAt = at;
        }
        const of = m.of + s.post.length;
        t.steps.push({ n: m.n, of, key: m.key, title: m.title, state: 'running', startedAt: at });
        t.step = m.title;
        t.progress = progressAt(m.n, of);
        if (m.key === 'create-cluster') s.reachedCreate = true;
        // The same count as the step record (the script's steps plus the post steps that follow them).
        s.log.add(`==> [${m.n}/${of}] ${m.title}`);
        this.ctx.persist(t);
        break;
      }
      case 'note':
        t.notes.push(m.text);
        s.log.add(`note: ${m.text}`);
        this.ctx.persist(t);
        break;
      case 'error':
        s.errorText = m.text;
        s.log.add(`error: ${m.text}`);
        break;
      case 'cleanup':
        s.cleanup = m.phase;
        s.log.add(`cleanup ${m.phase}${m.text ? `: ${m.text}` : ''}`);
        break;
      case 'result':
        s.result = m.value;
        break;
      case 'invalid':
        s.log.add(line);
        break;
    }
  }

  /**
   * Ends a task: records its outcome (see `recordEnd`), and whatever happens there (a write that fails,
   * a bug), frees its slot and its cluster and starts what is queued. A task never stays running.
   */
  private async finish(s: Running, r: RunResult): Promise<void> {
    const ctx = this.ctx;
    const t = s.task;
    try {
      await this.recordEnd(s, r);
    } catch (e) {
      const err = e as Error;
      ctx.log('error', `task ${t.id}: could not record its end: ${err.stack ?? err.message}`);
      if (!isTerminal(t.state)) {
        t.state = 'failed';
        t.finishedAt = now();
        t.error = { reason: `internal error while recording its end: ${sanitizeLine(err.message).slice(0, 300)}`, stderrTail: [...s.stderrTail] };
        ctx.store.flushSoon().catch(() => undefined);
      }
    } finally {
      ctx.running.delete(t.id);
      if (ctx.active.get(t.cluster) === t.id) ctx.active.delete(t.cluster);
      ctx.emitTask(t);
      this.pump();
    }
  }

  private async recordEnd(s: Running, r: RunResult): Promise<void> {
    const ctx = this.ctx;
    const t = s.task;
    // Lines logged so far reach the file (or turn out not to): a log that failed fails the task.
    await s.log.drain();
    if (s.log.error && !s.abort) s.abort = s.log.error;
    const at = now();
    let { state, reason } = runOutcome(r, {
      kind: t.kind,
      notes: t.notes,
      ...(s.errorText !== undefined ? { errorText: s.errorText } : {}),
      ...(s.result ? { result: s.result } : {}),
      ...(s.abort !== undefined ? { abort: s.abort } : {}),
      timeoutSeconds: ctx.cfg.timeouts[t.kind],
      stderrTail: s.stderrTail,
    });

    // A create that did not finish must not leave a half-made cluster: if the script could not clean
    // up after itself (killed, or its cleanup failed), do it here with the idempotent delete script.
    if (t.kind === 'create') {
      const cleanup = createCleanup(state, s.cleanup, s.reachedCreate);
      if (cleanup === 'run') t.cleanup = await cleanupCreate(ctx, t, s.log);
      else if (cleanup !== null) t.cleanup = cleanup;
    }

    const last = t.steps[t.steps.length - 1];
    if (last && last.state === 'running') {
      last.state = state === 'succeeded' ? 'succeeded' : 'failed';
      last.finishedAt = at;
    }
    let postFailed = false;
    if (state === 'succeeded' && s.post.length) {
      await ctx.save(`task ${t.id}: the script's outcome`, (d) => {
        const c = d.clusters.find((x) => x.name === t.cluster);
        if (c) applyScriptOutcome(c, t.kind, s.result, now());
      });
      ctx.emitCluster(t.cluster);
      const failures = await this.runPostSteps(s);
      if (failures.length) {
        postFailed = true;
        state = 'failed';
        reason = failures.join('; ');
      }
    }
    t.state = state;
    t.finishedAt = now();
    t.exitCode = r.exitCode;
    if (r.signal) t.signal = r.signal;
    if (state === 'succeeded') t.progress = 100;
    else t.error = { reason: reason!, stderrTail: [...s.stderrTail] };
    s.log.add(state === 'succeeded' ? `[kindler] task ${t.id} succeeded` : `[kindler] task ${t.id} ${state}: ${reason}`);
    await s.log.close();
    if (s.log.error && state === 'succeeded') {
      // The work is done but its log is not complete (it failed after the script, in a post step or on
      // the last line): not a success. Like a failed post step, what the provider did stays recorded.
      state = 'failed';
      reason = s.log.error;
      postFailed = true;
      t.state = state;
      t.error = { reason, stderrTail: [...s.stderrTail] };
    } else if (s.log.error && s.log.error !== reason) t.notes.push(s.log.error);

    let recheck = false;
    const end = { task: t, state, ...(reason !== undefined ? { reason } : {}), postFailed, ...(s.result ? { result: s.result } : {}), at };
    const saved = await ctx.save(`task ${t.id} ${state}`, (d) => {
      const c = d.clusters.find((x) => x.name === t.cluster);
      ctx.active.delete(t.cluster);
      if (!c) return;
      const done = applyTaskEnd(c, { ...end, savedAt: now() });
      if (done.remove) d.clusters.splice(d.clusters.indexOf(c), 1);
      recheck = done.recheck;
    });
    ctx.running.delete(t.id);
    ctx.log(
      state === 'succeeded' ? 'info' : 'warn',
      `task ${t.id} ${state}: ${t.kind} ${t.cluster}${reason ? ` (${reason})` : ''}${saved ? '' : ' [not saved yet]'}`,
    );
    ctx.emitCluster(t.cluster);
    if (recheck && !ctx.stopping) void ctx.recheck(t.cluster, t.kind === 'create' ? t : null);
  }

  /** Runs the post steps in order; each failure becomes "<key> step failed: <reason>". */
  private async runPostSteps(s: Running): Promise<string[]> {
    const ctx = this.ctx;
    const t = s.task;
    const failures: string[] = [];
    const base = t.steps.length ? t.steps[t.steps.length - 1]!.n : 0;
    const of = base + s.post.length;
    for (const [i, step] of s.post.entries()) {
      const c = ctx.cluster(t.cluster);
      if (!c) break;
      const n = base + i + 1;
      const title = step.title(c, t.kind);
      const rec: TaskStep = { n, of, key: step.key, title, state: 'running', startedAt: now() };
      t.steps.push(rec);
      t.step = title;
      t.progress = progressAt(n, of);
      s.log.add(`==> [${n}/${of}] ${title}`);
      ctx.persist(t);
      try {
        await step.run({
          kind: t.kind,
          taskId: t.id,
          cluster: clone(c),
          clusters: () => ctx.store.data.clusters.map(clone),
          log: (l) => s.log.add(cleanLine(l)),
        });
        rec.state = 'succeeded';
      } catch (e) {
        const msg = sanitizeLine((e as Error).message).slice(0, 2000);
        rec.state = 'failed';
        rec.error = msg;
        s.log.add(`error: ${title} failed: ${msg}`);
        failures.push(`${step.key} step failed: ${msg}`);
      }
      rec.finishedAt = now();
      this.ctx.persist(t);
    }
    return failures;
  }
}

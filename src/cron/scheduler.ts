/**
 * The daemon's periodic jobs (reconcile, TTL, retention). The cron library is injected: the caller passes
 * node-cron's `schedule` and `validate` (or a fake in tests).
 *
 * - Every expression is validated before anything is scheduled: one bad expression refuses the whole set,
 *   naming the job and the expression (the daemon must not start with a job silently missing).
 * - A job never overlaps itself: a tick (or an on-demand run) while the previous run is pending is skipped
 *   and logged.
 * - A job's error is logged and never thrown into the cron library or the daemon.
 */
import { usageError } from '../core/errors.js';
import { cleanLine } from '../core/text.js';

export interface Job {
  name: string;
  expr: string;
  run: () => unknown;
}

export interface ScheduledTask {
  stop(): void;
  destroy(): void;
}

export interface ScheduleOptions {
  name: string;
  timezone?: string;
}

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface SchedulerDeps {
  schedule(expr: string, fn: () => Promise<void>, opts: ScheduleOptions): ScheduledTask;
  validate(expr: string): boolean;
  log: LogFn;
  /** Passed to `schedule` for every job (node-cron's `timezone`, e.g. 'UTC'). */
  timezone?: string;
}

export type JobOutcome =
  | { name: string; ran: true; ok: true; ms: number }
  | { name: string; ran: true; ok: false; ms: number; error: string }
  | { name: string; ran: false; reason: string };

export interface Jobs {
  /** Runs a job now, outside its schedule, under the same no-overlap guard. Throws for an unknown name. */
  runJobNow(name: string): Promise<JobOutcome>;
  /** The names of jobs with a run in progress. */
  running(): string[];
  /** Resolves once no job is running. */
  idle(): Promise<void>;
  /** Stops and destroys every scheduled task; later ticks and on-demand runs do nothing. */
  stop(): void;
}

/** Validates every job first (throws naming the bad one), then schedules them all. */
export function startJobs(jobs: readonly Job[], deps: SchedulerDeps): Jobs {
  const names = new Set<string>();
  for (const j of jobs) {
    if (typeof j.name !== 'string' || !j.name) throw usageError('cron: every job needs a name');
    if (names.has(j.name)) throw usageError(`cron: job "${j.name}" is defined twice`);
    names.add(j.name);
    let ok = false;
    try {
      ok = typeof j.expr === 'string' && j.expr.trim() !== '' && deps.validate(j.expr);
    } catch {
      ok = false;
    }
    if (!ok) throw usageError(`cron: job "${j.name}": "${cleanLine(String(j.expr), 100)}" is not a valid cron expression`, j.name);
  }

  const log: LogFn = (level, msg) => {
    try {
      deps.log(level, msg);
    } catch {
      /* a broken logger must not break a job */
    }
  };
  const pending = new Map<string, { since: number; done: Promise<void> }>();
  const byName = new Map(jobs.map((j) => [j.name, j]));
  let stopped = false;

  const fire = (job: Job, how: 'tick' | 'on demand'): Promise<JobOutcome> => {
    if (stopped) return Promise.resolve({ name: job.name, ran: false, reason: 'the scheduler is stopped' });
    const cur = pending.get(job.name);
    if (cur) {
      const reason = `previous run still going (started ${new Date(cur.since).toISOString()})`;
      log('warn', `job ${job.name}: ${how} skipped: ${reason}`);
      return Promise.resolve({ name: job.name, ran: false, reason });
    }
    const since = Date.now();
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    pending.set(job.name, { since, done });
    return (async (): Promise<JobOutcome> => {
      try {
        await job.run();
        return { name: job.name, ran: true, ok: true, ms: Date.now() - since };
      } catch (e) {
        const error = cleanLine(e instanceof Error ? e.message : String(e), 2000);
        log('error', `job ${job.name} failed: ${error}`);
        return { name: job.name, ran: true, ok: false, ms: Date.now() - since, error };
      } finally {
        pending.delete(job.name);
        settle();
      }
    })();
  };

  const tasks: ScheduledTask[] = [];
  try {
    for (const j of jobs) {
      tasks.push(deps.schedule(j.expr, async () => void (await fire(j, 'tick')), { name: j.name, ...(deps.timezone ? { timezone: deps.timezone } : {}) }));
    }
  } catch (e) {
    for (const t of tasks) stopTask(t);
    throw e;
  }
  log(
    'info',
    `cron: ${jobs.length} job${jobs.length === 1 ? '' : 's'} scheduled${jobs.length ? `: ${jobs.map((j) => `${j.name} (${j.expr})`).join(', ')}` : ''}`,
  );

  return {
    runJobNow(name: string): Promise<JobOutcome> {
      const job = byName.get(name);
      if (!job) throw usageError(`cron: no job named "${cleanLine(name, 80)}" (jobs: ${[...byName.keys()].join(', ') || 'none'})`);
      return fire(job, 'on demand');
    },
    running: () => [...pending.keys()],
    async idle(): Promise<void> {
      while (pending.size) await Promise.all([...pending.values()].map((p) => p.done));
    },
    stop(): void {
      if (stopped) return;
      stopped = true;
      for (const t of tasks) stopTask(t);
    },
  };
}

function stopTask(t: ScheduledTask): void {
  try {
    t.stop();
  } catch {
    /* already stopped */
  }
  try {
    t.destroy();
  } catch {
    /* already destroyed */
  }
}

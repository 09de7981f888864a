/**
 * Output shared by the task verbs: a task's line, printing text or --json, and --wait / --follow
 * streaming of a task's log and progress.
 */
import { EXIT } from '../core/errors.js';
import { sanitizeLine } from '../core/text.js';
import { isTerminal, type Task } from '../core/types.js';
import type { LogCursor } from '../engine/logs.js';
import type { Context } from './context.js';
import { bar } from './format.js';
import { jsonText } from './json.js';
import type { Parsed } from './parse.js';

export const WAIT = {
  wait: { type: 'bool' as const, help: 'follow progress and log until the task ends; exit with its result' },
  'cancel-on-interrupt': { type: 'bool' as const, help: 'with --wait: Ctrl-C cancels the task (and waits for it to end) instead of leaving it running' },
};

export function print(ctx: Context, json: boolean, value: unknown, text: () => string): void {
  ctx.io.out(json ? `${jsonText(value)}\n` : text());
}

export function taskLine(t: Task): string {
  return `task ${t.id}: ${t.kind} ${t.cluster} ${t.state}${t.error ? ` — ${sanitizeLine(t.error.reason)}` : ''}\n`;
}

/** Exit code for a finished task. */
export function taskExit(t: Task): number {
  return t.state === 'succeeded' ? EXIT.ok : EXIT.failed;
}

/** After a mutating verb: print the task at once, or follow it with --wait. */
export async function report(ctx: Context, p: Parsed, json: boolean, task: Task): Promise<number> {
  if (!p.flags.wait) {
    print(ctx, json, { task }, () => `${taskLine(task).trimEnd()}\nfollow it with: kindler logs ${task.id} --follow\n`);
    return EXIT.ok;
  }
  if (!json) ctx.io.out(taskLine(task));
  ctx.io.onTask?.(task.id);
  const final = await follow(ctx, task.id, { showLog: !json, showProgress: !json });
  if (!final) return EXIT.failed;
  print(ctx, json, { task: final }, () => taskLine(final));
  if (!json && final.error?.stderrTail.length) ctx.io.err(`last stderr lines:\n${final.error.stderrTail.map((l) => `  ${sanitizeLine(l)}`).join('\n')}\n`);
  return taskExit(final);
}

/** Bytes of log read and written per step when streaming a log to a client. */
const LOG_STEP = 256 * 1024;

/**
 * Prints a task's log (from the start, or its last `tail` lines), then, unless `once`, new lines
 * and progress until the task ends. The log is streamed from its file at the client's pace: live
 * events only say that more is there, so a slow or stalled client holds at most one step of output
 * in the daemon, and no line is lost or doubled however far behind it falls.
 */
export async function follow(ctx: Context, id: string, o: { showLog: boolean; showProgress: boolean; tail?: number; once?: boolean }): Promise<Task | null> {
  const { engine, io } = ctx;
  let lastStep = '';
  let barShown = false;
  // On a terminal the progress line stays pinned under the log: cleared before lines are written,
  // drawn again after them, and redrawn by a timer (spinner, elapsed time) while nothing happens.
  const pinned = o.showProgress && io.isTTY;
  let barTask: Task | null = null;
  let spin = 0;
  const clearBar = () => {
    if (barShown) io.out('\r\x1b[2K');
    barShown = false;
  };
  const drawBar = () => {
    const t = barTask;
    if (!t || io.signal.aborted) return;
    clearBar();
    const since = Date.parse(t.startedAt ?? t.createdAt);
    const elapsed = formatElapsed(Number.isNaN(since) ? 0 : Date.now() - since);
    const head = `${SPINNER[spin % SPINNER.length]} ${bar(t.progress)} ${elapsed} `;
    const label = sanitizeLine(t.step ?? t.state);
    const room = Math.max(0, io.columns - 1 - head.length);
    io.out(`${head}${label.length > room ? `${label.slice(0, Math.max(0, room - 1))}…` : label}`);
    barShown = true;
  };
  const ticker = pinned
    ? setInterval(() => {
        spin++;
        drawBar();
      }, 200)
    : null;
  ticker?.unref();
  const showProgress = (t: Task) => {
    if (!o.showProgress) return;
    if (io.isTTY) {
      barTask = t;
      drawBar();
    } else if (t.step && t.step !== lastStep) {
      lastStep = t.step;
      io.out(`[${String(t.progress).padStart(3)}%] ${sanitizeLine(t.step)}\n`);
    }
  };
  // Wake-ups: new lines, progress, the end of the task, the client leaving.
  let final: Task | null = null;
  let latest: Task | null = null;
  let dirty = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    dirty = true;
    const w = wake;
    wake = null;
    w?.();
  };
  const off = engine.feed.subscribe((e) => {
    if (e.type === 'log' && e.taskId === id) {
      if (o.showLog) poke();
    } else if (e.type === 'task' && e.task.id === id) {
      latest = e.task;
      // The task's log is closed before its final event: after it, one more read gets every line.
      if (isTerminal(e.task.state)) final = e.task;
      poke();
    }
  });
  io.signal.addEventListener('abort', poke);
  let cursor: LogCursor | null = null;
  try {
    const now = engine.getTask(id);
    if (now && isTerminal(now.state)) final = now;
    if (o.showLog) {
      let start = 0;
      if (o.tail) {
        const t = await engine.readLogTail(id, o.tail);
        if (t.lines.length) io.out(`${t.lines.map((l) => sanitizeLine(l)).join('\n')}\n`);
        start = t.bytes;
      }
      cursor = engine.logCursor(id, start);
    }
    if (now && !final) latest = now;
    for (;;) {
      if (io.signal.aborted) return null;
      const last = Boolean(final) || Boolean(o.once);
      dirty = false;
      if (cursor) {
        await engine.flushLog(id);
        for (;;) {
          // Only a finished log's last line may lack its newline; a running one's is still being written.
          const lines = await cursor.next(LOG_STEP, Boolean(final));
          if (!lines.length) break;
          clearBar();
          io.out(`${lines.map((l) => sanitizeLine(l)).join('\n')}\n`);
          if (pinned && !final) drawBar();
          if (io.writable) await io.writable();
          if (io.signal.aborted) return null;
        }
      }
      if (last) {
        barTask = null;
        clearBar();
        return final ?? engine.getTask(id) ?? null;
      }
      if (latest) {
        const t: Task = latest;
        latest = null;
        showProgress(t);
      }
      if (!dirty) await new Promise<void>((r) => (wake = r));
    }
  } finally {
    if (ticker) clearInterval(ticker);
    off();
    io.signal.removeEventListener('abort', poke);
    await cursor?.close();
  }
}

const SPINNER = ['|', '/', '-', '\\'];

/** Elapsed time as m:ss (h:mm:ss past an hour). */
function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

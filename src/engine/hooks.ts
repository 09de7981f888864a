/**
 * Runs registration hooks (listed by provision/hooks.ts) through the same process-group runner as scripts.
 */
import { runScript } from '../os/runner.js';

export interface HookOutcome {
  hook: string;
  ok: boolean;
  exitCode: number | null;
  reason?: string;
}

/** Runs every hook of a phase; stops at the first failure. Output lines go to `onLine`. */
export async function runHooks(
  hooks: string[],
  env: Record<string, string>,
  o: { timeoutMs: number; graceMs: number; cwd: string; baseEnv?: Record<string, string>; onLine: (line: string) => void },
): Promise<HookOutcome[]> {
  const out: HookOutcome[] = [];
  for (const hook of hooks) {
    const name = hook.split('/').pop()!;
    o.onLine(`hook ${name}: starting`);
    const run = runScript({
      script: hook,
      args: [],
      cwd: o.cwd,
      env: { ...o.baseEnv, ...env },
      timeoutMs: o.timeoutMs,
      graceMs: o.graceMs,
      onLine: (line) => o.onLine(`hook ${name}: ${line}`),
      direct: true,
    });
    const r = await run.done;
    const ok = r.exitCode === 0 && !r.stopped && !r.spawnError;
    const reason = ok ? undefined : (r.spawnError ?? (r.stopped === 'timeout' ? `timed out after ${o.timeoutMs / 1000}s` : `exited ${r.exitCode ?? r.signal}`));
    o.onLine(`hook ${name}: ${ok ? 'ok' : `failed (${reason})`}`);
    out.push({ hook: name, ok, exitCode: r.exitCode, ...(reason ? { reason } : {}) });
    if (!ok) break;
  }
  return out;
}

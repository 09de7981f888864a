/**
 * Processes as the kernel shows them (/proc), and process groups: what every part of kindler that
 * starts, finds or stops a child uses (src/os/run.ts, the engine's script runner, the lock).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The kernel's start time of a process (field 22 of /proc/PID/stat), or null when it does not exist. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return afterComm[19] ?? null;
  } catch {
    return null;
  }
}

/** A process seen in /proc: its id, its process group, and its state letter (R, S, D, T, …). */
export interface ProcEntry {
  pid: number;
  pgid: number;
  state: string;
}

function procStat(pid: number | 'self'): ProcEntry | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid: pid === 'self' ? process.pid : pid, pgid: Number(f[2]), state: f[0] ?? '?' };
  } catch {
    return null;
  }
}

/** True while the process exists and is not a zombie (a zombie is dead, only not yet reaped). */
export function processRunning(pid: number): boolean {
  const st = procStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** This process's own process group (from /proc), or null. */
export function ownProcessGroup(): number | null {
  return procStat('self')?.pgid ?? null;
}

/**
 * Every running (not zombie) process whose environment holds exactly `KEY=VALUE`, other than this one.
 * Only this user's processes are readable; where /proc cannot be read the answer is empty.
 */
export function processesWithEnv(key: string, value: string): ProcEntry[] {
  const want = Buffer.from(`${key}=${value}\0`);
  const out: ProcEntry[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${e}/environ`);
    } catch {
      continue; // gone, or another user's
    }
    const i = env.indexOf(want);
    if (i < 0 || (i > 0 && env[i - 1] !== 0)) continue;
    const st = procStat(Number(e));
    if (st && st.state !== 'Z' && st.state !== 'X') out.push(st);
  }
  return out;
}

/** Sends a signal to a whole process group; false when it no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once no process is left in the group (or after `ms`), re-killing stragglers. */
export async function groupGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (signalGroup(pid, 0)) {
    if (Date.now() > end) return false;
    signalGroup(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/**
 * Keeps one SSH session's crash from taking the daemon down. Each session runs its TUI and verbs
 * inside an AsyncLocalStorage scope; timers, promises and callbacks created there inherit it. An
 * uncaught exception or unhandled rejection raised in a session's scope closes that session only,
 * and no 'uncaughtException'/'unhandledRejection' listener (blessed's, the daemon's, the test
 * runner's) ever sees it. Everything else keeps Node's behaviour untouched.
 *
 * How: Node reports both through `process.emit(...)`; a wrapper answers "handled" for errors whose
 * async context belongs to a session, and passes everything else to the original emit.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface SessionScope {
  /** Closes the session the error came from; must not throw. */
  fail(err: unknown): void;
}

const als = new AsyncLocalStorage<SessionScope>();
let installs = 0;
let wrapped = false;

/** Runs `fn` (and everything it schedules) in the session's scope. */
export function inSession<T>(scope: SessionScope, fn: () => T): T {
  return als.run(scope, fn);
}

function wrapEmit(): void {
  if (wrapped) return;
  wrapped = true;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with process as `this`
  const original = process.emit;
  // Installed once for the process; inert while no SSH server runs.
  process.emit = function emit(this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
    if (installs > 0 && (event === 'uncaughtException' || event === 'unhandledRejection')) {
      const scope = als.getStore();
      if (scope) {
        try {
          scope.fail(args[0]);
        } catch { /* fail() must not throw; never let it become a second crash */ }
        return true;
      }
    }
    return (original as (...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof process.emit;
}

/** Activates the guard (reference-counted); returns the deactivator. */
export function installSessionGuard(): () => void {
  wrapEmit();
  installs++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    installs--;
  };
}

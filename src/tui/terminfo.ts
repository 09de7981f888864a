/**
 * One compiled terminfo for all screens. blessed builds a Tput for every screen: it reads the
 * system's terminfo file (which blessed 0.1.81 cannot parse on ncurses 6), falls back to its own
 * bundled copy, parses it and compiles every capability with `new Function`. That is 15-40 ms of
 * blocking CPU per SSH login, always with the same result, since every screen uses the same
 * terminal name and options. `shareTerminfo()` makes Tput.setup reuse the first result for the
 * same terminal and options; each Tput still gets its own bound methods (Tput.inject).
 */
import blessed from 'blessed';

interface TputLike {
  terminal: string;
  termcap?: unknown;
  extended?: unknown;
  padding?: unknown;
  options: Record<string, unknown>;
  error: Error | null;
  info?: unknown;
  inject(info: unknown): void;
  setup(): void;
}

interface Compiled {
  info: unknown;
  error: Error | null;
}

let installed = false;
const cache = new Map<string, Compiled>();

/** What a Tput's compiled result depends on (the environment is the process's own, fixed). */
function keyOf(t: TputLike): string {
  const o = t.options ?? {};
  return JSON.stringify([t.terminal, Boolean(t.termcap), o.extended ?? null, o.padding ?? null, o.forceUnicode ?? null, o.terminfoFile ?? null, o.termcapFile ?? null, o.terminfoPrefix ?? null]);
}

/** Installs the shared terminfo once per process (idempotent). */
export function shareTerminfo(): void {
  if (installed) return;
  const proto = (blessed as unknown as { Tput?: { prototype: TputLike } }).Tput?.prototype;
  if (!proto || typeof proto.setup !== 'function' || typeof proto.inject !== 'function') return;
  installed = true;
  const setup = proto.setup;
  proto.setup = function (this: TputLike): void {
    const key = keyOf(this);
    const hit = cache.get(key);
    if (hit) {
      this.error = hit.error;
      this.inject(hit.info);
      return;
    }
    setup.call(this);
    if (this.info) cache.set(key, { info: this.info, error: this.error });
  };
}

/** Compiled terminfos held (for tests). */
export function sharedTerminfoCount(): number {
  return cache.size;
}

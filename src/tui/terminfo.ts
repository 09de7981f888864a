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

interface InfoLike {
  methods?: Record<string, unknown>;
  all: unknown;
  bools: unknown;
  numbers: unknown;
  strings: unknown;
  names: string[];
  name: string;
  features: Record<string, unknown>;
}

/** The capability wrappers shared by every Tput of one compiled terminfo (by its methods object). */
const wrappers = new WeakMap<object, Record<string, unknown>>();
/** Program.put's capability methods, shared by every Program of one compiled terminfo. */
const puts = new WeakMap<object, object>();

let installed = false;
const cache = new Map<string, Compiled>();

/** What a Tput's compiled result depends on (the environment is the process's own, fixed). */
function keyOf(t: TputLike): string {
  const o = t.options ?? {};
  return JSON.stringify([
    t.terminal,
    Boolean(t.termcap),
    o.extended ?? null,
    o.padding ?? null,
    o.forceUnicode ?? null,
    o.terminfoFile ?? null,
    o.termcapFile ?? null,
    o.terminfoPrefix ?? null,
  ]);
}

/** Installs the shared terminfo once per process (idempotent). */
export function shareTerminfo(): void {
  if (installed) return;
  const proto = (blessed as unknown as { Tput?: { prototype: TputLike } }).Tput?.prototype;
  if (!proto || typeof proto.setup !== 'function' || typeof proto.inject !== 'function') return;
  installed = true;
  // Every Tput got its own wrapper closure per capability (~500), every screen's Program another
  // (`put`, see slimPut): ~1,700 closures and their contexts per session, which a full garbage
  // collection has to walk for every session (with 100 sessions, most of the daemon's heap). The
  // compiled capabilities do not use `this`, so one set of wrappers per compiled terminfo serves
  // every Tput.
  const tput = proto as unknown as TputLike & Record<string, unknown>;
  tput.inject = function (this: TputLike & Record<string, unknown>, info: unknown): void {
    const i = info as InfoLike;
    const methods = (i.methods ?? i) as Record<string, unknown>;
    let shared = wrappers.get(methods);
    if (!shared) {
      shared = {};
      for (const key of Object.keys(methods)) {
        const m = methods[key];
        shared[key] = typeof m === 'function' ? (...args: unknown[]) => (m as (a: unknown[]) => unknown).call(null, args) : m;
      }
      wrappers.set(methods, shared);
    }
    Object.assign(this, shared);
    // The rest is blessed's Tput.inject as it is.
    this.info = i;
    this.all = i.all;
    this.methods = i.methods;
    this.bools = i.bools;
    this.numbers = i.numbers;
    this.strings = i.strings;
    if (!i.names.includes(this.terminal)) this.terminal = i.name;
    this.features = i.features;
    for (const key of Object.keys(i.features)) {
      if (key === 'padding') {
        if (!i.features.padding && this.options.padding !== true) this.padding = false;
        continue;
      }
      this[key] = i.features[key];
    }
  };
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the tput as this
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

interface ProgramLike {
  tput: TputLike & { padding?: unknown; methods?: object; _print(code: string, write: (s: string) => unknown): unknown } & Record<string, unknown>;
  put: unknown;
  _write(s: string): unknown;
}

/**
 * Replaces a Program's `put` (a function with one closure per capability, made for every screen)
 * by one whose capability methods are shared by every Program of the same compiled terminfo: each
 * finds its Program through the `put` it is called on.
 */
export function slimPut(program: unknown): void {
  const p = program as ProgramLike;
  const tput = p.tput;
  const methods = tput?.methods;
  if (!methods || tput.padding) return;
  let proto = puts.get(methods) as Record<string, unknown> | undefined;
  if (!proto) {
    proto = Object.create(Function.prototype) as Record<string, unknown>;
    for (const key of Object.keys(tput)) {
      const v = tput[key];
      if (typeof v !== 'function') proto[key] = v;
      else
        proto[key] = function (this: { program: ProgramLike }, ...args: unknown[]) {
          const prog = this.program;
          return prog._write((prog.tput[key] as (...a: unknown[]) => string).apply(prog.tput, args));
        };
    }
    puts.set(methods, proto);
  }
  const put = function (cap: string, ...args: unknown[]) {
    const f = p.tput[cap];
    if (typeof f === 'function') return p._write((f as (...a: unknown[]) => string).apply(p.tput, args));
    return undefined;
  };
  Object.setPrototypeOf(put, proto);
  (put as unknown as { program: ProgramLike }).program = p;
  p.put = put;
}

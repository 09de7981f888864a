/**
 * The TUI's only timers: a coalescing, budgeted render scheduler, a wake-up (one timer shared by all
 * sessions) for when a time on screen next changes, and the idle watch. Each is stopped by `stop()`; nothing else schedules.
 */

/**
 * How much render time one session may use: `ms` of measured frame time per `perMs`. Frames over
 * it are put off (never dropped: the latest state is drawn once the session is back under it), so
 * one session cannot take the event loop from the others, whatever it asks for.
 */
export interface RenderBudget {
  ms: number;
  perMs: number;
}

/**
 * The default: 100 ms of frames per second, a tenth of the event loop. A key's frame costs 1-5 ms
 * and a full reflow at the size cap ~7 ms, so normal use stays under it; a client sending keys or
 * window changes as fast as it can gets about 20-100 frames a second, and other sessions keep theirs.
 */
export const RENDER_BUDGET: RenderBudget = { ms: 100, perMs: 1000 };

/**
 * Frames of all sessions together drawn in one turn of the event loop, ms. Session timers that are
 * due together run back to back before the loop gets to its I/O; past TURN_MS in one turn, the
 * rest wait for the next turn, so a verb or a key never waits behind every session's frame at once.
 */
const turn = { spent: 0, resetting: false };
/** See `turn`. */
export const TURN_MS = 25;

function chargeTurn(ms: number): void {
  turn.spent += ms;
  if (turn.resetting) return;
  turn.resetting = true;
  setImmediate(() => {
    turn.spent = 0;
    turn.resetting = false;
  });
}

/** What a scheduler has drawn (for tests and diagnostics). */
export interface RenderStats {
  /** Frames run. */
  frames: number;
  /** Times a frame had to wait: the session was over its render budget, or this turn's frames over TURN_MS. */
  deferred: number;
  /** Measured time spent in frames, ms. */
  spentMs: number;
}

/**
 * Coalesces render requests: at most one frame per `gapMs` window; `now()` renders at once (input).
 * Every frame is timed and charged to a leaky bucket that drains at `budget.ms` per `budget.perMs`:
 * while the bucket holds more than `budget.ms`, frames (also `now()` ones) wait until it is back
 * under, so a session draws at most about `budget.ms` per `budget.perMs` on average (plus one burst
 * of `budget.ms` and one frame's overshoot).
 */
export class RenderScheduler {
  private timer: NodeJS.Timeout | null = null;
  /** When the scheduled frame is due (Date.now() time). */
  private due = Infinity;
  private last = -Infinity;
  private stopped = false;
  /** Charged frame time not yet drained, ms, as of `drainedAt` (clock time). */
  private debt = 0;
  private drainedAt: number;
  readonly stats: RenderStats = { frames: 0, deferred: 0, spentMs: 0 };

  constructor(
    private readonly flush: () => void,
    private readonly gapMs = 50,
    private readonly budget: RenderBudget = RENDER_BUDGET,
    /** Drains the bucket, in ms (tests pass their own). */
    private readonly clock: () => number = () => performance.now(),
    /**
     * Measures a frame, in ms: wall time by default, i.e. how long the frame held the event loop
     * (which is what the other sessions and verbs wait for). CPU time (process.cpuUsage) was tried:
     * on a busy machine it let sessions draw more, and the admin's `list` p95 in a resize storm rose
     * from ~200 to 400-500 ms.
     */
    private readonly work: () => number = () => performance.now(),
    /** Frames drawn in one turn of the event loop by all sessions, before the rest wait (see `turn`). */
    private readonly turnMs = TURN_MS,
  ) {
    this.drainedAt = clock();
  }

  /**
   * Asks for a frame; several requests in one window make one frame. `inMs` asks for it that soon
   * instead of a frame gap after the last frame (a resize burst's last size; budget permitting).
   */
  request(inMs?: number): void {
    if (this.stopped) return;
    const gap = inMs === undefined ? this.last + this.gapMs - Date.now() : Math.min(inMs, this.last + this.gapMs - Date.now());
    const wait = Math.max(0, gap, this.overBudgetFor());
    if (this.timer) {
      if (Date.now() + wait >= this.due) return;
      clearTimeout(this.timer);
    }
    this.arm(wait);
  }

  /** Renders now (after a keypress), absorbing any pending request; over budget, it waits instead. */
  now(): void {
    if (this.stopped) return;
    const wait = this.overBudgetFor();
    if (wait > 0 || turn.spent >= this.turnMs) {
      this.stats.deferred++;
      // As soon as allowed: a frame scheduled for later (a frame gap away) is brought forward.
      if (this.timer && this.due <= Date.now() + wait) return;
      if (this.timer) clearTimeout(this.timer);
      this.arm(wait);
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.due = Infinity;
    this.run();
  }

  private arm(wait: number): void {
    this.due = Date.now() + wait;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.due = Infinity;
      const over = this.overBudgetFor();
      if (over > 0 || turn.spent >= this.turnMs) {
        this.stats.deferred++;
        return this.arm(over);
      }
      this.run();
    }, wait);
  }

  /** How long until the bucket is back at the budget (0: a frame may run now). */
  private overBudgetFor(): number {
    const t = this.clock();
    const rate = this.budget.ms / this.budget.perMs;
    this.debt = Math.max(0, this.debt - Math.max(0, t - this.drainedAt) * rate);
    this.drainedAt = t;
    // (A timer longer than 2^31-1 ms would fire at once.)
    return this.debt <= this.budget.ms ? 0 : Math.min(2 ** 31 - 1, Math.ceil((this.debt - this.budget.ms) / rate));
  }

  private run(): void {
    if (this.stopped) return;
    this.last = Date.now();
    const started = this.work();
    try {
      this.flush();
    } finally {
      const cost = Math.max(0, this.work() - started);
      chargeTurn(cost);
      this.overBudgetFor();
      this.debt += cost;
      this.stats.frames++;
      this.stats.spentMs += cost;
    }
  }

  /** Whether a frame is scheduled. */
  get pending(): boolean {
    return this.timer !== null;
  }

  /** Cancels any scheduled frame for good. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** A 1 s interval that exists only while `set(true)`. */
export class Ticker {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly onTick: () => void,
    private readonly everyMs = 1000,
  ) {}

  /** Starts or stops the interval. */
  set(on: boolean): void {
    if (on && !this.timer) this.timer = setInterval(() => this.onTick(), this.everyMs);
    else if (!on && this.timer) this.stop();
  }

  /** Whether the interval is running. */
  get running(): boolean {
    return this.timer !== null;
  }

  /** Stops the interval. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * Sessions' wake-ups, on one timer: each session says when a time it shows next reads differently
 * (a countdown, an elapsed time); the timer fires a little after the soonest of them, for every
 * session due by then. Sessions showing the same clusters wake together, and a session wakes only
 * when its screen changes, not every second.
 */
class SharedClock {
  private readonly due = new Map<Wakeup, number>();
  private timer: NodeJS.Timeout | null = null;
  /** When the timer fires (Date.now() time). */
  private at = Infinity;

  set(w: Wakeup, when: number): void {
    if (when < Infinity) this.due.set(w, when);
    else this.due.delete(w);
    this.arm();
  }

  private arm(): void {
    let min = Infinity;
    for (const t of this.due.values()) if (t < min) min = t;
    if (min === Infinity) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.at = Infinity;
      return;
    }
    const fireAt = min + WAKE_COALESCE_MS;
    // An earlier timer stays (it finds nothing due and re-arms): no churn while sessions re-arm.
    if (this.timer && this.at <= fireAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.at = fireAt;
    this.timer = setTimeout(() => this.fire(), Math.min(2 ** 31 - 1, Math.max(0, fireAt - Date.now())));
  }

  private fire(): void {
    this.timer = null;
    this.at = Infinity;
    const now = Date.now();
    const run: Wakeup[] = [];
    for (const [w, t] of this.due) {
      if (t > now) continue;
      this.due.delete(w);
      run.push(w);
    }
    for (const w of run) w.fire();
    this.arm();
  }
}

/** How late a wake-up may come, to wake the sessions due about together at once (ms). */
export const WAKE_COALESCE_MS = 30;
const clock = new SharedClock();

/** One session's wake-up on the shared clock: `at(t)` (Infinity: none) replaces the previous one. */
export class Wakeup {
  private when = Infinity;

  constructor(private readonly onWake: () => void) {}

  /** Wakes at `when` (Date.now() time; a little after it), or never (Infinity). */
  at(when: number): void {
    if (when === this.when) return;
    this.when = when;
    clock.set(this, when);
  }

  /** Whether a wake-up is set. */
  get running(): boolean {
    return this.when < Infinity;
  }

  /** @internal Called by the clock. */
  fire(): void {
    this.when = Infinity;
    this.onWake();
  }

  /** Cancels the wake-up. */
  stop(): void {
    this.at(Infinity);
  }
}

/** Warns after `warnMs` without input and closes after `closeMs` (both counted from the last input). */
export class IdleWatch {
  private timer: NodeJS.Timeout | null = null;
  private last = Date.now();
  private warned = false;
  private stopped = false;

  constructor(
    private readonly warnMs: number,
    private readonly closeMs: number,
    private readonly onWarn: (closesInMs: number) => void,
    private readonly onClose: () => void,
  ) {
    this.arm(Math.max(0, warnMs));
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.check();
    }, ms);
  }

  private check(): void {
    const idle = Date.now() - this.last;
    if (idle < this.warnMs) return this.arm(this.warnMs - idle);
    if (idle >= this.closeMs) {
      this.stop();
      this.onClose();
      return;
    }
    if (!this.warned) {
      this.warned = true;
      this.onWarn(this.closeMs - idle);
    }
    this.arm(this.closeMs - idle);
  }

  /** Records input. Returns true when this cleared a shown warning. */
  activity(): boolean {
    this.last = Date.now();
    const was = this.warned;
    this.warned = false;
    // After a warning the timer points at the close time: bring it back to the next warning.
    if (was && this.timer) clearTimeout(this.timer);
    if ((was || this.timer === null) && !this.stopped) this.arm(this.warnMs);
    return was;
  }

  /** Stops watching. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

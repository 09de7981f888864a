/**
 * The TUI's only timers: a coalescing render scheduler, a 1 s tick that runs only while something
 * time-based is on screen, and the idle watch. Each is stopped by `stop()`; nothing else schedules.
 */

/** Coalesces render requests: at most one frame per `gapMs` window; `now()` renders at once (input). */
export class RenderScheduler {
  private timer: NodeJS.Timeout | null = null;
  private last = -Infinity;
  private stopped = false;

  constructor(private readonly flush: () => void, private readonly gapMs = 50) {}

  /** Asks for a frame; several requests in one window make one frame. */
  request(): void {
    if (this.timer || this.stopped) return;
    const wait = Math.max(0, this.last + this.gapMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.run();
    }, wait);
  }

  /** Renders now (after a keypress), absorbing any pending request. */
  now(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.run();
  }

  private run(): void {
    if (this.stopped) return;
    this.last = Date.now();
    this.flush();
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

  constructor(private readonly onTick: () => void, private readonly everyMs = 1000) {}

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

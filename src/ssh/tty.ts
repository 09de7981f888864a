/** The TUI's input stream over SSH. */
import { EventEmitter } from 'node:events';

/** blessed reads keys from `input` and needs a TTY-looking stream; the channel's data is fed in by us. */
export class TtyInput extends EventEmitter {
  readonly isTTY = true;
  isRaw = true;
  readable = true;
  destroyed = false;
  constructor(public columns: number, public rows: number) {
    super();
  }
  setRawMode(mode: boolean): this {
    this.isRaw = mode;
    return this;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  isPaused(): boolean {
    return false;
  }
  setEncoding(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

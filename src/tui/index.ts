/**
 * kindler's full-screen terminal UI (k9s-like), served over SSH or opened locally by kindler-tui.
 * It watches and acts only through a SessionBackend: `subscribe` for the snapshot and events,
 * `run` for verbs (exactly as the CLI), `may` to hide what the user's role may not do.
 */
import { TuiApp } from './app.js';
import type { TuiOptions } from './options.js';

export type { TuiInput, TuiOptions, TuiOutput, TuiViewMemory, TuiViewState } from './options.js';

/** Control of an open TUI. */
export interface TuiHandle {
  /** The terminal's new size (SSH window-change): capped, and coalesced into the next frame. */
  resize(cols: number, rows: number): void;
  /** Tears the TUI down, then prints `message` (if any) on the normal screen; calls onExit(0, 'closed'). */
  close(message?: string): void;
}

/** Opens the TUI on a terminal stream pair. The screen is built synchronously; the feed is joined after. */
export function openTui(o: TuiOptions): TuiHandle {
  const t = new TuiApp(o);
  return { resize: (c, r) => t.resize(c, r), close: (m) => t.close(m) };
}

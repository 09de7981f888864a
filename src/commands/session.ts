/**
 * What an interactive face (the TUI, over SSH or locally) gets: a way to watch (snapshot, then
 * ordered events) and a way to act (run a verb, exactly as the CLI would). Nothing else.
 */
import type { Action } from '../access/authorize.js';
import type { UsersStore } from '../access/users.js';
import type { Engine } from '../engine/engine.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { may, runCommand, type Principal } from './index.js';

export interface VerbResult {
  code: number;
  out: string;
  err: string;
}

export interface SessionBackend {
  /** Who this session is. */
  readonly principal: Principal;
  /** The host name shown in the header. */
  readonly host: string;
  /** The snapshot, then every later event in order, until unsubscribe. */
  subscribe(listener: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }>;
  /** Runs one verb (same parser, validation, authorization and output as the CLI). */
  run(argv: string[]): Promise<VerbResult>;
  /** Whether this session may do `action` on a cluster owned by `owner` (hide what is refused). */
  may(action: Action, owner?: string, taskUser?: string): boolean;
  /** Ends presence and any subscriptions. */
  close(): void;
}

/** A session inside the process that runs the engine (SSH sessions in the daemon, embedded kindler-tui). */
export class LocalSession implements SessionBackend {
  private readonly leave: () => void;
  private readonly offs = new Set<() => void>();
  private readonly abort = new AbortController();

  constructor(private readonly engine: Engine, readonly principal: Principal, readonly host: string, private readonly users?: UsersStore) {
    this.leave = engine.joinSession({ user: principal.user, role: principal.role, source: principal.source });
  }

  async subscribe(listener: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }> {
    const { snapshot, unsubscribe } = this.engine.subscribe(listener);
    this.offs.add(unsubscribe);
    return {
      snapshot,
      unsubscribe: () => {
        unsubscribe();
        this.offs.delete(unsubscribe);
      },
    };
  }

  async run(argv: string[]): Promise<VerbResult> {
    let out = '';
    let err = '';
    const code = await runCommand(argv, {
      engine: this.engine,
      actor: this.principal,
      ...(this.users ? { users: this.users } : {}),
      io: {
        out: (s) => (out += s),
        err: (s) => (err += s),
        isTTY: false,
        columns: 120,
        signal: this.abort.signal,
        readFile: async () => {
          throw Object.assign(new Error('files cannot be read from an interactive session'), { code: 'EACCES' });
        },
      },
    });
    return { code, out, err };
  }

  may(action: Action, owner?: string, taskUser?: string): boolean {
    return may(this.principal, action, owner, taskUser);
  }

  close(): void {
    this.abort.abort();
    for (const off of this.offs) off();
    this.offs.clear();
    this.leave();
  }
}

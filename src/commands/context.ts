/**
 * What every verb runs with: who asks (Principal), where it writes (IO), and the engine (Context).
 */
import { authorize, type Action, type Role } from '../access/authorize.js';
import type { UsersStore } from '../access/users.js';
import type { Actor, Engine } from '../engine/engine.js';

export const VERSION = '0.1.0';

/** Where a verb writes, and what it knows about the client. */
export interface IO {
  out(s: string): void;
  err(s: string): void;
  isTTY: boolean;
  columns: number;
  /** Aborted when the client goes away (Ctrl-C, dropped connection). */
  signal: AbortSignal;
  /** Reads a file named on the command line, as the client sees it. */
  readFile(path: string): Promise<string>;
  /**
   * Resolves when the client has taken most of what was written (or has gone): a verb that writes a
   * lot awaits it between steps so its output waits in the file it comes from, not in memory.
   */
  writable?(): Promise<void>;
  /**
   * Reads what the client sends on standard input, to its end (`--key -`). Absent where the face
   * has no input to give (the TUI): the verb says so.
   */
  readStdin?(): Promise<string>;
  /** Told the id of the task a --wait verb follows (the local CLI's Ctrl-C names it, or cancels it). */
  onTask?(id: string): void;
}

/** Who runs the verb: the engine's actor plus the role the face authenticated. */
export interface Principal extends Actor {
  role: Role;
  /** The SSH key that authenticated this session, when there was one. */
  fingerprint?: string;
}

export interface Context {
  engine: Engine;
  actor: Principal;
  io: IO;
  /** The users file, where this face can manage it (the daemon's SSH service and the local CLI). */
  users?: UsersStore;
  /** The SSH service this verb came through (its listen host and real port), for tunnel commands. */
  ssh?: { host: string; port: number };
}

/** Whether the actor may do `action` on a cluster owned by `owner` (faces hide what is refused). */
export function may(actor: Principal, action: Action, owner?: string, taskUser?: string): boolean {
  return authorize(actor, action, { owner, taskUser }).ok;
}

/**
 * The running kindler as a face sees it. The entry point that starts the engine hands each face (the SSH
 * server, the control socket) one Service; a face acts only through it, by running verbs and opening
 * interactive sessions, and reads only what it offers here. Faces never hold or import the engine itself
 * (`npm run lint:layers` checks it).
 */
import type { UsersStore } from '../access/users.js';
import type { Config } from '../core/config.js';
import type { Listener, SessionInfo, Snapshot } from '../core/feed.js';
import type { Cluster } from '../core/types.js';
import type { Engine } from '../engine/engine.js';
import { runCommand, type Context, type Principal } from './index.js';
import { boundApi, LocalSession, type SessionApi } from './session.js';

export class Service {
  constructor(private readonly engine: Engine) {}

  /** The configuration kindler runs with. */
  get cfg(): Config {
    return this.engine.cfg;
  }

  /** Runs one verb, with the same parser, authorization and output as every other face. */
  run(argv: readonly string[], ctx: Omit<Context, 'engine'>): Promise<number> {
    return runCommand(argv, { ...ctx, engine: this.engine });
  }

  /** An interactive session (presence, watching, verbs) for `principal`; close it when done. */
  session(principal: Principal, host: string, users?: UsersStore): LocalSession {
    return new LocalSession(this.engine, principal, host, users);
  }

  /** The typed verbs of a session as `principal` (for a face that carries them, like the control socket). */
  api(principal: Principal, users?: UsersStore): SessionApi {
    return boundApi(this.engine, principal, users);
  }

  /** The snapshot, then every later event, in order (for a face that forwards them, like the control socket). */
  subscribe(listener: Listener): { snapshot: Snapshot; unsubscribe: () => void } {
    return this.engine.subscribe(listener);
  }

  /** Every later event, without a snapshot. Returns the unsubscribe function. */
  onEvent(listener: Listener): () => void {
    return this.engine.feed.subscribe(listener);
  }

  /** Registers a watching session for presence; returns the function that ends it. */
  joinSession(info: Omit<SessionInfo, 'id' | 'since'>): () => void {
    return this.engine.joinSession(info);
  }

  /** The lines of a task's log held in memory (and how many earlier ones are only on disk). */
  liveLog(id: string): { lines: string[]; dropped: number } | undefined {
    return this.engine.liveLog(id);
  }

  getCluster(name: string): Cluster | undefined {
    return this.engine.getCluster(name);
  }

  /** Records an audit event for something a face did that is not a verb (an SSH tunnel). */
  recordAudit(...args: Parameters<Engine['recordAudit']>): void {
    this.engine.recordAudit(...args);
  }
}

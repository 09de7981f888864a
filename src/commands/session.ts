/**
 * What an interactive face (the TUI, over SSH or locally) gets: a way to watch (snapshot, then
 * ordered events) and a way to act: the typed verbs of `api` (the same checks, authorization and
 * errors as the CLI's verbs, without argv or JSON), or a verb run as the CLI would. Nothing else.
 */
import type { Action } from '../access/authorize.js';
import type { UsersStore } from '../access/users.js';
import type { Engine } from '../engine/engine.js';
import { KindlerError } from '../core/errors.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { sanitizeLine } from '../core/text.js';
import { Api, type CreateArgs, type KubeconfigArgs } from './api.js';
import { argvApi } from './argv-api.js';
import { may, runCommand, type Principal } from './index.js';

export interface VerbResult {
  code: number;
  out: string;
  err: string;
}

/** A verb's function with its actor bound: what a session hands its face. */
type Bound<F> = F extends (actor: Principal, ...rest: infer A) => infer R ? (...rest: A) => R : never;

/** The calls an interactive face makes (the TUI), each as the Api's verb with the session's actor bound. */
export interface SessionApi {
  show: Bound<Api['show']>;
  create: Bound<Api['create']>;
  delete: Bound<Api['delete']>;
  start: Bound<Api['start']>;
  stop: Bound<Api['stop']>;
  cancel: Bound<Api['cancel']>;
  extend: Bound<Api['extend']>;
  logs: Bound<Api['logs']>;
  reconcile: Bound<Api['reconcile']>;
  audit: Bound<Api['audit']>;
  kubeconfig: Bound<Api['kubeconfig']>;
}

/** The verbs of SessionApi with the words they are audited under when refused: the verb and its target. */
export const SESSION_VERBS: Record<keyof SessionApi, { verb: string; target: (a: never) => string }> = {
  show: { verb: 'show', target: (a: { name: string }) => a.name },
  create: { verb: 'create', target: (a: CreateArgs) => a.name },
  delete: { verb: 'delete', target: (a: { name: string }) => a.name },
  start: { verb: 'start', target: (a: { name: string }) => a.name },
  stop: { verb: 'stop', target: (a: { name: string }) => a.name },
  cancel: { verb: 'cancel', target: (a: { id: string }) => a.id },
  extend: { verb: 'extend', target: (a: { name: string }) => a.name },
  logs: { verb: 'logs', target: (a: { ref: string }) => a.ref },
  reconcile: { verb: 'reconcile', target: () => '' },
  audit: { verb: 'audit', target: () => '' },
  kubeconfig: { verb: 'kubeconfig', target: (a: KubeconfigArgs) => a.name },
};

export interface SessionBackend {
  /** Who this session is. */
  readonly principal: Principal;
  /** The host name shown in the header. */
  readonly host: string;
  /** The snapshot, then every later event in order, until unsubscribe. */
  subscribe(listener: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }>;
  /**
   * The typed verbs, as this session's principal: results, or a KindlerError. A backend without
   * them (one that only carries argv) is called through `sessionApi`, which runs them as argv.
   */
  readonly api?: SessionApi;
  /** Runs one verb (same parser, validation, authorization and output as the CLI). */
  run(argv: string[]): Promise<VerbResult>;
  /** Whether this session may do `action` on a cluster owned by `owner` (hide what is refused). */
  may(action: Action, owner?: string, taskUser?: string): boolean;
  /** Ends presence and any subscriptions. */
  close(): void;
}

/** The typed verbs of a session: its own, or its argv verbs behind the same calls. */
export function sessionApi(backend: SessionBackend): SessionApi {
  return backend.api ?? argvApi((argv) => backend.run(argv));
}

/** A session inside the process that runs the engine (SSH sessions in the daemon, embedded kindler-tui). */
export class LocalSession implements SessionBackend {
  private readonly leave: () => void;
  private readonly offs = new Set<() => void>();
  private readonly abort = new AbortController();
  readonly api: SessionApi;

  constructor(
    private readonly engine: Engine,
    readonly principal: Principal,
    readonly host: string,
    private readonly users?: UsersStore,
  ) {
    this.leave = engine.joinSession({ user: principal.user, role: principal.role, source: principal.source });
    this.api = boundApi(engine, principal, users);
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

/**
 * The SessionApi of `principal` in the engine's process: each call is the Api's verb, and fails as
 * the argv verb would: a refusal is audited (verb and target), anything but a KindlerError is an
 * internal error.
 */
export function boundApi(engine: Engine, principal: Principal, users?: UsersStore): SessionApi {
  const api = new Api(engine, users ? { users } : {});
  const out: Record<string, (a: never) => Promise<unknown>> = {};
  for (const [name, how] of Object.entries(SESSION_VERBS)) {
    const fn = (api[name as keyof SessionApi] as (actor: Principal, a: unknown) => Promise<unknown>).bind(api);
    out[name] = async (a: never) => {
      try {
        return await fn(principal, a);
      } catch (e) {
        const err = e instanceof KindlerError ? e : new KindlerError('failed', `internal error: ${(e as Error).message}`);
        if (err.kind === 'refused')
          engine.recordAudit(principal, how.verb, sanitizeLine(a === undefined ? '' : how.target(a)).slice(0, 120), 'refused', sanitizeLine(err.message));
        throw err;
      }
    };
  }
  return out as unknown as SessionApi;
}

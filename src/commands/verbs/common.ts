/** What the verb files share: the Verb shape, flag and task helpers, the one authorization check. */
import { authorize, type Action } from '../../access/authorize.js';
import { KindlerError, refused, usageError } from '../../core/errors.js';
import { shown } from '../../core/text.js';
import type { Task } from '../../core/types.js';
import { Engine } from '../../engine/engine.js';
import type { Context } from '../context.js';
import type { Parsed, VerbSpec } from '../parse.js';

/** Refuses (exit 5) unless the actor may do `action`; for cluster actions, the cluster must exist first. */
export function allow(ctx: Context, action: Action, clusterName?: string, taskUser?: string): void {
  let owner: string | undefined;
  if (clusterName !== undefined) {
    const c = ctx.engine.getCluster(clusterName);
    if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(clusterName, 40)}`);
    owner = c.owner;
  }
  const d = authorize(ctx.actor, action, { owner, taskUser });
  if (!d.ok) throw refused(d.reason);
}

export interface Verb extends VerbSpec {
  run(p: Parsed, ctx: Context, json: boolean): Promise<number>;
  /** Rewrites the verb's argv before it is parsed (users: a key line split into words by ssh). */
  prepare?(argv: readonly string[]): string[];
}

/** The width a table must fit: the terminal's, or none (a pipe or file gets whole rows). */
export function fitWidth(ctx: Context): number | undefined {
  return ctx.io.isTTY ? ctx.io.columns : undefined;
}

/** A count flag (--limit, --tail): a whole number 1-999999, or undefined when not given. */
export function countFlag(raw: string | undefined, field = 'limit'): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,5}$/.test(raw)) throw usageError(`${field}: must be a whole number 1-999999 (got ${shown(raw, 20)})`, field);
  return Number(raw);
}

export function resolveTask(ctx: Context, ref: string): Task {
  if (/^t-/.test(ref)) {
    Engine.checkTaskId(ref);
    const t = ctx.engine.getTask(ref);
    if (!t) throw new KindlerError('notFound', `task: no task "${ref}"`);
    return t;
  }
  const t = ctx.engine.latestTaskFor(ref);
  if (!t) throw new KindlerError('notFound', `task: no task id or cluster with tasks named ${shown(ref, 40)}`);
  return t;
}

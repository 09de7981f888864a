/** What the verb files share: the Verb shape, the typed backend of a context, the table width. */
import { Api } from '../api.js';
import type { Context } from '../context.js';
import type { Parsed, VerbSpec } from '../parse.js';

/** The typed backend a verb calls, for the engine, users file and SSH service of its context. */
export function apiOf(ctx: Context): Api {
  return new Api(ctx.engine, { ...(ctx.users ? { users: ctx.users } : {}), ...(ctx.ssh ? { ssh: ctx.ssh } : {}) });
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

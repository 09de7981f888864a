/** The `audit` verb. */
import { parseDuration } from '../../core/duration.js';
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, countFlag, allow } from './common.js';

export const audit: Verb = {
  name: 'audit',
  summary: 'Who did what, from which face, with what result (admin).',
  args: [],
  flags: {
    user: { type: 'string', value: 'USER', help: 'only this user' },
    since: { type: 'string', value: 'DURATION|TIME', help: 'only events newer than this (e.g. 2h, or an ISO time)' },
    limit: { type: 'string', value: 'N', help: 'at most the last N events (default 200)' },
  },
  async run(p, ctx, json) {
    allow(ctx, 'audit');
    const since = p.flags.since as string | undefined;
    let sinceMs: number | undefined;
    if (since !== undefined) {
      if (/^\d{4}-\d{2}-\d{2}/.test(since) && !Number.isNaN(Date.parse(since))) sinceMs = Date.parse(since);
      else sinceMs = Date.now() - parseDuration('since', since);
    }
    const limit = countFlag(p.flags.limit as string | undefined);
    const events = ctx.engine.listAudit({ ...(p.flags.user ? { user: p.flags.user as string } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}), limit: limit ?? 200 });
    print(ctx, json, { events }, () =>
      events.length ? table(['TIME', 'USER', 'SOURCE', 'ACTION', 'TARGET', 'RESULT', 'TASK', 'DETAIL'], events.map((e) => [e.at, e.user, `${e.source}${e.fingerprint ? ` ${e.fingerprint.slice(0, 19)}` : ''}`, e.action, e.target, e.result, e.taskId, e.detail])) : 'no audit events\n',
    );
    return EXIT.ok;
  },
};

/** The `audit` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, apiOf } from './common.js';

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
    const { events } = await apiOf(ctx).audit(ctx.actor, {
      ...(p.flags.user ? { user: p.flags.user as string } : {}),
      ...(p.flags.since !== undefined ? { since: p.flags.since as string } : {}),
      ...(p.flags.limit !== undefined ? { limit: p.flags.limit as string } : {}),
    });
    print(ctx, json, { events }, () =>
      events.length
        ? table(
            ['TIME', 'USER', 'SOURCE', 'ACTION', 'TARGET', 'RESULT', 'TASK', 'DETAIL'],
            events.map((e) => [
              e.at,
              e.user,
              `${e.source}${e.fingerprint ? ` ${e.fingerprint.slice(0, 19)}` : ''}`,
              e.action,
              e.target,
              e.result,
              e.taskId,
              e.detail,
            ]),
          )
        : 'no audit events\n',
    );
    return EXIT.ok;
  },
};

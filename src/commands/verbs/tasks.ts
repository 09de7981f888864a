/** The `tasks` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { taskTable } from '../format.js';
import { type Verb, fitWidth, apiOf } from './common.js';

export const tasks: Verb = {
  name: 'tasks',
  summary: 'List tasks, newest first.',
  args: [],
  flags: {
    cluster: { type: 'string', value: 'NAME', help: 'only this cluster' },
    active: { type: 'bool', help: 'only queued and running tasks' },
    limit: { type: 'string', value: 'N', help: 'at most N tasks (default 50)' },
  },
  async run(p, ctx, json) {
    const r = await apiOf(ctx).tasks(ctx.actor, {
      ...(p.flags.cluster ? { cluster: p.flags.cluster as string } : {}),
      active: Boolean(p.flags.active),
      ...(p.flags.limit !== undefined ? { limit: p.flags.limit as string } : {}),
    });
    print(ctx, json, r, () => taskTable(r.tasks, fitWidth(ctx)));
    return EXIT.ok;
  },
};

/** The `start` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const start: Verb = {
  name: 'start',
  summary: 'Start a stopped cluster.',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).start(ctx.actor, { name: p.args.name! }));
  },
};

/** The `start` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, allow } from './common.js';

export const start: Verb = {
  name: 'start',
  summary: 'Start a stopped cluster.',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    allow(ctx, 'start', p.args.name!);
    return report(ctx, p, json, await ctx.engine.startCluster(p.args.name!, ctx.actor));
  },
};

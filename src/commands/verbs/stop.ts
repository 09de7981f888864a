/** The `stop` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, allow } from './common.js';

export const stop: Verb = {
  name: 'stop',
  summary: 'Stop a running cluster (its containers stay).',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    allow(ctx, 'stop', p.args.name!);
    return report(ctx, p, json, await ctx.engine.stopCluster(p.args.name!, ctx.actor));
  },
};

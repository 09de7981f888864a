/** The `stop` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, apiOf } from './common.js';

export const stop: Verb = {
  name: 'stop',
  summary: 'Stop a running cluster (its containers stay).',
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    return report(ctx, p, json, await apiOf(ctx).stop(ctx.actor, { name: p.args.name! }));
  },
};

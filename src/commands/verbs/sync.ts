/** The `sync` verb. */
import { report, WAIT } from '../follow.js';
import { type Verb, allow } from './common.js';

export const sync: Verb = {
  name: 'sync',
  summary: "Re-run a running cluster's route and GitOps branch steps (finishes what a failed step left).",
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: { ...WAIT },
  async run(p, ctx, json) {
    allow(ctx, 'sync', p.args.name!);
    return report(ctx, p, json, await ctx.engine.sync(p.args.name!, ctx.actor));
  },
};

/** The `show` verb. */
import { EXIT } from '../../core/errors.js';
import { shown } from '../../core/text.js';
import { print } from '../follow.js';
import { clusterDetails } from '../format.js';
import { type Verb, apiOf } from './common.js';

export const show: Verb = {
  name: 'show',
  summary: "Show one cluster: its record, its steps' results and its recent tasks.",
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: {
    live: { type: 'bool', help: 'also ask the provider now: every container of the cluster with its role and docker state' },
  },
  async run(p, ctx, json) {
    const r = await apiOf(ctx).show(ctx.actor, { name: p.args.name!, live: Boolean(p.flags.live) });
    const { cluster: c, tasks, live } = r;
    if (!live) {
      print(ctx, json, r, () => clusterDetails(c, tasks));
      return EXIT.ok;
    }
    print(ctx, json, r, () => {
      const head =
        'error' in live
          ? `containers (live): the provider could not be asked: ${shown(live.error, 300)}`
          : [
              `containers (live, provider says ${live.state}):`,
              ...(live.containers.length ? live.containers.map((x) => `  ${shown(x.name, 80)}  ${shown(x.role, 30)}  ${shown(x.state, 30)}`) : ['  (none)']),
            ].join('\n');
      return `${clusterDetails(c, tasks).trimEnd()}\n\n${head}\n`;
    });
    return EXIT.ok;
  },
};

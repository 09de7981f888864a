/** The `show` verb. */
import { EXIT, KindlerError } from '../../core/errors.js';
import { shown } from '../../core/text.js';
import { print } from '../follow.js';
import { clusterDetails } from '../format.js';
import type { Verb } from './common.js';

export const show: Verb = {
  name: 'show',
  summary: "Show one cluster: its record, its steps' results and its recent tasks.",
  args: [{ name: 'name', required: true, help: 'cluster name' }],
  flags: {
    live: { type: 'bool', help: "also ask the provider now: every container of the cluster with its role and docker state" },
  },
  async run(p, ctx, json) {
    const name = p.args.name!;
    const c = ctx.engine.getCluster(name);
    if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(name, 40)}`);
    const tasks = ctx.engine.listTasks({ cluster: name, limit: 5 });
    if (!p.flags.live) {
      print(ctx, json, { cluster: c, tasks }, () => clusterDetails(c, tasks));
      return EXIT.ok;
    }
    // A failed probe is part of the answer (docker down, say), not a failure of `show`.
    let live: { state: string; containers: { name: string; role: string; state: string }[] } | { error: string };
    try {
      const st = await ctx.engine.probe(c.name, c.provider);
      live = { state: st.state, containers: st.containers ?? [] };
    } catch (e) {
      live = { error: (e as Error).message };
    }
    print(ctx, json, { cluster: c, tasks, live }, () => {
      const head = 'error' in live
        ? `containers (live): the provider could not be asked: ${shown(live.error, 300)}`
        : [`containers (live, provider says ${live.state}):`, ...(live.containers.length ? live.containers.map((x) => `  ${shown(x.name, 80)}  ${shown(x.role, 30)}  ${shown(x.state, 30)}`) : ['  (none)'])].join('\n');
      return `${clusterDetails(c, tasks).trimEnd()}\n\n${head}\n`;
    });
    return EXIT.ok;
  },
};

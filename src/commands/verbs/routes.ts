/** The `routes` verb. */
import { EXIT } from '../../core/errors.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, apiOf } from './common.js';

export const routes: Verb = {
  name: 'routes',
  summary: 'List host -> backend routes, and whether the live HAProxy file matches what state says.',
  args: [],
  flags: {},
  async run(_p, ctx, json) {
    const st = await apiOf(ctx).routes(ctx.actor);
    if (!st.enabled) {
      print(ctx, json, st, () => 'routes are off (routes.enabled is false)\n');
      return EXIT.ok;
    }
    print(
      ctx,
      json,
      st,
      () =>
        (st.routes.length
          ? table(
              ['HOST', 'ALSO', 'BACKEND', 'CLUSTER'],
              st.routes.map((r) => [r.host, r.wildcard, r.backend, r.cluster]),
            )
          : 'no routes\n') +
        st.skipped.map((x) => `not routed: ${x.name}: ${x.reason}\n`).join('') +
        (st.liveMatches
          ? `live file ${st.liveFile} matches state\n`
          : `live file ${st.liveFile} does NOT match state (a route step failed, or the file was edited)\n`),
    );
    return st.liveMatches ? EXIT.ok : EXIT.failed;
  },
};

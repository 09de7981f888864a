/** The `doctor` verb. */
import { EXIT } from '../../core/errors.js';
import { sanitizeLine } from '../../core/text.js';
import { print } from '../follow.js';
import { table } from '../format.js';
import { type Verb, apiOf } from './common.js';

export const doctor: Verb = {
  name: 'doctor',
  summary: 'Check the host tools kindler needs (docker daemon, k3d, kind, kubectl, git, haproxy).',
  args: [],
  flags: {},
  async run(_p, ctx, json) {
    const r = await apiOf(ctx).doctor(ctx.actor);
    const { tools, state } = r;
    const by = (n: string) => tools.find((t) => t.name === n)!;
    const toolsOk = by('docker').usable && by('kubectl').usable && (by('k3d').usable || by('kind').usable);
    const stateLine = state.saving
      ? 'state: saved\n'
      : `state: NOT BEING SAVED since ${state.since}: ${sanitizeLine(state.problem ?? '')} (${state.failures} failed write${state.failures === 1 ? '' : 's'}; ${state.lockLost ? 'restart kindler' : 'retried with backoff; free the space or fix the file and it resumes by itself'})\n`;
    // Lines of the journal found torn or damaged at start: ignored (a write cut short), said here and in the daemon log.
    const journal = r.journal ?? [];
    print(
      ctx,
      json,
      r,
      () =>
        table(
          ['TOOL', 'FOUND', 'VERSION', 'USABLE', 'NEEDED FOR', 'DETAIL'],
          tools.map((t) => [t.name, t.found ? 'yes' : 'no', t.version, t.usable ? 'yes' : 'no', t.required, t.detail]),
        ) +
        stateLine +
        journal.map((j) => `${sanitizeLine(j)}\n`).join('') +
        (toolsOk ? 'kindler can create clusters on this host\n' : 'kindler cannot create clusters here: docker, kubectl and k3d or kind must be usable\n') +
        (state.saving ? '' : 'kindler cannot record changes until state is saved again: new tasks are refused\n'),
    );
    return r.ok ? EXIT.ok : EXIT.failed;
  },
};

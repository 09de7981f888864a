/**
 * `kindler doctor`: which host tools are there, which versions, and what is not usable.
 */
import { runCaptured } from '../os/run.js';
import { cleanLine } from '../core/text.js';

export interface ToolReport {
  name: string;
  found: boolean;
  version?: string;
  usable: boolean;
  detail: string;
  /** Needed for every cluster, or only for some features. */
  required: 'always' | 'k3d' | 'kind' | 'routes' | 'gitops';
}

interface Probe {
  name: string;
  cmd: string;
  args: string[];
  required: ToolReport['required'];
  version: (out: string) => string | undefined;
}

const first = (re: RegExp) => (out: string) => re.exec(out)?.[1];

const PROBES: Probe[] = [
  { name: 'docker', cmd: 'docker', args: ['info', '--format', '{{.ServerVersion}}'], required: 'always', version: (o) => o.trim().split('\n')[0] || undefined },
  { name: 'k3d', cmd: 'k3d', args: ['version'], required: 'k3d', version: first(/k3d version (v\S+)/) },
  { name: 'kind', cmd: 'kind', args: ['version'], required: 'kind', version: first(/kind (v\S+)/) },
  { name: 'kubectl', cmd: 'kubectl', args: ['version', '--client'], required: 'always', version: first(/Client Version: (v\S+)/) },
  { name: 'git', cmd: 'git', args: ['--version'], required: 'gitops', version: first(/git version (\S+)/) },
  { name: 'haproxy', cmd: 'haproxy', args: ['-v'], required: 'routes', version: first(/HA-?Proxy version (\S+)/) },
];

async function probe(p: Probe, env?: Record<string, string>): Promise<ToolReport> {
  const r = await runCaptured(p.cmd, p.args, { timeoutMs: 15_000, ...(env ? { env } : {}) });
  if (r.spawnError !== undefined && /ENOENT/.test(r.spawnError)) {
    return { name: p.name, found: false, usable: false, detail: `${p.cmd} is not on PATH`, required: p.required };
  }
  const text = cleanLine(r.all, 4000);
  // A failed probe's output is its error, never a version (docker info prints the error where the version would be).
  const version = r.ok ? p.version(r.all) : undefined;
  if (!r.ok) {
    const why =
      p.name === 'docker' && !r.timedOut && r.spawnError === undefined
        ? `the docker daemon is not reachable: ${cleanLine(r.all.trim().split('\n').pop() ?? '', 300)}`
        : `"${p.cmd} ${p.args.join(' ')}" ${r.how}: ${text.slice(0, 300)}`;
    return { name: p.name, found: true, ...(version ? { version } : {}), usable: false, detail: why, required: p.required };
  }
  return { name: p.name, found: true, ...(version ? { version } : {}), usable: true, detail: 'ok', required: p.required };
}

/** Checks every tool in parallel, with the scripts' environment (`env` on top of the allow-listed one). */
export async function doctor(env?: Record<string, string>): Promise<ToolReport[]> {
  return Promise.all(PROBES.map((p) => probe(p, env)));
}

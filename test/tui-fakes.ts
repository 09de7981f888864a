/**
 * Fixtures of the in-process TUI tests (tui-render, tui-bounds, tui-frames): cluster records and a
 * session backend whose snapshot is ready at once (like a LocalSession in the daemon) and whose
 * events the test pushes.
 */
import type { Principal } from '../src/commands/index.js';
import type { SessionBackend, VerbResult } from '../src/commands/session.js';
import type { Cluster } from '../src/core/types.js';
import type { EngineEvent, EngineEventInput, Snapshot } from '../src/core/feed.js';

/** A running k3d cluster record owned by alice. */
export function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 0,
    httpPort: 8080,
    httpsPort: 8443,
    apiPort: 6443,
    owner: 'alice',
    createdAt: '2026-01-01T00:00:00.000Z',
    desired: 'present',
    actual: 'running',
    kubeContext: `k3d-${name}`,
    kubeconfig: `/tmp/${name}.yaml`,
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

/** alice (admin) on host devbox: every verb succeeds with no output; `push` delivers an event to every subscriber. */
export class FakeBackend implements SessionBackend {
  readonly principal: Principal = { user: 'alice', role: 'admin', source: 'test' };
  readonly host = 'devbox';
  readonly listeners = new Set<(e: EngineEvent) => void>();
  seq = 5;
  constructor(private readonly clusters: Cluster[]) {}
  async subscribe(l: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }> {
    this.listeners.add(l);
    return { snapshot: { seq: this.seq, clusters: structuredClone(this.clusters), tasks: [], sessions: [] }, unsubscribe: () => void this.listeners.delete(l) };
  }
  async run(): Promise<VerbResult> {
    return { code: 0, out: '{"lines":[]}\n', err: '' };
  }
  may(): boolean {
    return true;
  }
  close(): void {}
  push(e: EngineEventInput): void {
    const ev = { ...e, seq: ++this.seq };
    for (const l of [...this.listeners]) l(ev);
  }
}

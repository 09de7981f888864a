/**
 * The audit log beyond the events tasks write with themselves: actions that are not tasks (users, imports,
 * refusals, rate limited per user), reading it, and pruning it by age and count; and retention's other half,
 * removing finished tasks and their log files.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isTerminal, type AuditEvent } from '../core/types.js';
import { clone, now, type Actor, type EngineContext } from './context.js';
import { RefusalLimiter } from './refusals.js';

export class Audit {
  /** Refusals beyond `auditRefusalsPerMinute` per user are counted, then recorded as one summary event. */
  private readonly refusals: RefusalLimiter;

  constructor(private readonly ctx: EngineContext) {
    this.refusals = new RefusalLimiter(
      () => ctx.cfg.auditRefusalsPerMinute,
      (s) => {
        const detail = `${s.count} more refusal${s.count === 1 ? '' : 's'} suppressed (over ${s.limit} per minute, ${s.from} to ${s.to})`;
        ctx.log('warn', `audit: ${s.user}: ${detail}`);
        this.write({
          at: now(),
          user: s.user,
          ...(s.fingerprint ? { fingerprint: s.fingerprint } : {}),
          source: s.source,
          action: 'refusals-suppressed',
          target: s.user,
          result: 'refused',
          detail,
        });
      },
    );
  }

  /** See Engine.recordAudit. */
  record(actor: Actor, action: string, target: string, result: AuditEvent['result'], detail?: string): void {
    if (result === 'refused' && !this.refusals.admit(actor)) return;
    this.write({
      at: now(),
      user: actor.user,
      ...(actor.fingerprint ? { fingerprint: actor.fingerprint } : {}),
      source: actor.source,
      action,
      target,
      result,
      ...(detail ? { detail } : {}),
    });
  }

  private write(ev: AuditEvent): void {
    void this.ctx.store.update((d) => this.ctx.pushAudit(d, ev)).catch((e: Error) => this.ctx.log('error', `state write failed: ${e.message}`));
  }

  /** Summarizes the refusals counted so far at once instead of at the end of their minute (shutdown, tests). */
  flushRefusals(): void {
    this.refusals.flush();
  }

  /** Audit events, oldest first, filtered. */
  list(f: { user?: string; sinceMs?: number; limit?: number } = {}): AuditEvent[] {
    const out = this.ctx.store.data.audit.filter((a) => (!f.user || a.user === f.user) && (f.sinceMs === undefined || Date.parse(a.at) >= f.sinceMs));
    return (f.limit ? out.slice(-f.limit) : out).map(clone);
  }

  /** Prunes audit events older than `maxAgeMs` (0: none by age) and the oldest beyond `maxEvents` (0: no count limit). */
  async prune(maxAgeMs: number, maxEvents: number): Promise<number> {
    const store = this.ctx.store;
    const all = store.data.audit;
    let drop = 0;
    if (maxAgeMs > 0) {
      const cut = Date.now() - maxAgeMs;
      // Oldest first: events are appended in time order; one with an unreadable time is kept.
      while (drop < all.length && Date.parse(all[drop]!.at) < cut) drop++;
    }
    if (maxEvents > 0) drop = Math.max(drop, all.length - maxEvents);
    if (drop <= 0) return 0;
    await store.update((d) => void d.audit.splice(0, drop));
    // Once the state file says which events are kept, the journal segments holding none of them go.
    store.dropAuditSegments();
    return drop;
  }

  /** Removes finished tasks (never an active one) and their log files. */
  async pruneTasks(ids: string[]): Promise<number> {
    const drop = new Set(
      ids.filter((id) => {
        const t = this.ctx.store.data.tasks.find((x) => x.id === id);
        return t && isTerminal(t.state);
      }),
    );
    if (drop.size === 0) return 0;
    // The tasks leave memory and the journal by whole segments (what else a segment holds is appended again).
    await this.ctx.store.removeTasks(drop);
    for (const id of drop) {
      const l = this.ctx.logs.get(id);
      if (l) {
        await l.close();
        this.ctx.logs.delete(id);
      }
      await rm(join(this.ctx.logDir, `${id}.log`), { force: true });
    }
    return drop.size;
  }
}

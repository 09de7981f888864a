/**
 * Reading state and presence: copies of clusters and tasks (never the live records), the feed's snapshot
 * and subscription, the interactive sessions for presence, task logs (live ring, whole file, tail, cursor),
 * and waiting for a task's end.
 */
import { notFound } from '../core/errors.js';
import type { Listener, SessionInfo, Snapshot } from '../core/feed.js';
import { isTerminal, type Cluster, type Task } from '../core/types.js';
import { clone, now, type EngineContext } from './context.js';
import { LogCursor, readLogFile, readLogTail, type LogTail } from './logs.js';
import { join } from 'node:path';

export class Reads {
  private readonly sessions = new Map<string, SessionInfo>();
  private sessionSeq = 0;

  constructor(private readonly ctx: EngineContext) {}

  snapshot(): Snapshot {
    return {
      seq: this.ctx.feed.lastSeq,
      clusters: this.listClusters(),
      tasks: this.listTasks({ limit: this.ctx.cfg.taskListLimit }),
      sessions: [...this.sessions.values()].map(clone),
      storage: this.ctx.store.health(),
    };
  }

  /** Registers an interactive session for presence; returns the function that ends it. */
  joinSession(info: Omit<SessionInfo, 'id' | 'since'>): () => void {
    const id = `s-${++this.sessionSeq}`;
    this.sessions.set(id, { ...info, id, since: now() });
    const emit = () => this.ctx.feed.emit({ type: 'presence', sessions: [...this.sessions.values()].map(clone) });
    emit();
    return () => {
      if (this.sessions.delete(id)) emit();
    };
  }

  /** Snapshot, then every later event, in order. Returns the unsubscribe function. */
  subscribe(listener: Listener): { snapshot: Snapshot; unsubscribe: () => void } {
    const snapshot = this.snapshot();
    const unsubscribe = this.ctx.feed.subscribe(listener);
    return { snapshot, unsubscribe };
  }

  listClusters(): Cluster[] {
    return this.ctx.store.data.clusters.map(clone).sort((a, b) => a.name.localeCompare(b.name));
  }

  getCluster(name: string): Cluster | undefined {
    const c = this.ctx.cluster(name);
    return c && clone(c);
  }

  getTask(id: string): Task | undefined {
    const t = this.ctx.store.data.tasks.find((x) => x.id === id);
    return t && clone(t);
  }

  /** Newest first. */
  listTasks(f: { cluster?: string; active?: boolean; limit?: number } = {}): Task[] {
    const out: Task[] = [];
    const all = this.ctx.store.data.tasks;
    for (let i = all.length - 1; i >= 0 && (f.limit === undefined || out.length < f.limit); i--) {
      const t = all[i]!;
      if (f.cluster && t.cluster !== f.cluster) continue;
      if (f.active && isTerminal(t.state)) continue;
      out.push(clone(t));
    }
    return out;
  }

  /** Lines in memory for a live task (and how many earlier ones are only on disk). */
  liveLog(id: string): { lines: string[]; dropped: number } | undefined {
    return this.ctx.logs.get(id)?.tail();
  }

  private known(id: string): void {
    if (!this.ctx.store.data.tasks.some((t) => t.id === id)) throw notFound(`task: no task "${id}"`);
  }

  /** The complete log of a task, from disk. */
  async readLog(id: string): Promise<string[]> {
    this.known(id);
    await this.flushLog(id);
    return readLogFile(this.ctx.logDir, id);
  }

  /** A reader of a task's log file from byte `offset` on (see `flushLog` before reading a live one). */
  logCursor(id: string, offset = 0): LogCursor {
    this.known(id);
    return new LogCursor(join(this.ctx.logDir, `${id}.log`), offset);
  }

  /** Resolves once every line the task has logged so far is in its log file. */
  async flushLog(id: string): Promise<void> {
    await this.ctx.logs.get(id)?.drain();
  }

  /** A task's last `n` log lines and the index of the first of them, read without loading the whole log. */
  async readLogTail(id: string, n: number): Promise<LogTail> {
    this.known(id);
    await this.flushLog(id);
    return readLogTail(this.ctx.logDir, id, n);
  }

  /** Resolves with the task once it is terminal. */
  waitForTask(id: string): Promise<Task> {
    return new Promise((resolve, reject) => {
      const t = this.getTask(id);
      if (!t) return reject(notFound(`task: no task "${id}"`));
      if (isTerminal(t.state)) return resolve(t);
      const off = this.ctx.feed.subscribe((e) => {
        if (e.type === 'task' && e.task.id === id && isTerminal(e.task.state)) {
          off();
          resolve(e.task);
        }
      });
    });
  }
}

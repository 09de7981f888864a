/**
 * The lowdb adapter of state.json: a validated read (migrated to the current schema) and an atomic,
 * durable write.
 */
import { readFile } from 'node:fs/promises';
import type { Adapter } from 'lowdb';
import { writeFileAtomic } from '../os/atomic.js';
import { migrate, StateFileError, stateProblem, type StateData } from './schema.js';

/** lowdb adapter: validated read, atomic durable write. */
export class AtomicJsonFile implements Adapter<StateData> {
  /** The schemaVersion the file had when read (before migrations), or null for no file. */
  readVersion: number | null = null;
  constructor(readonly file: string) {}

  async read(): Promise<StateData | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return null;
      throw new StateFileError(`state file ${this.file}: cannot be read (${err.code ?? err.message})`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new StateFileError(`state file ${this.file}: is not valid JSON (${(e as Error).message}); it was left untouched`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new StateFileError(`state file ${this.file}: must hold a JSON object; it was left untouched`);
    const raw = (doc as Record<string, unknown>).schemaVersion;
    this.readVersion = typeof raw === 'number' ? raw : 0;
    const data = migrate(doc as Record<string, unknown>, this.file);
    const problem = stateProblem(data);
    if (problem) throw new StateFileError(`state file ${this.file}: ${problem}; it was left untouched`);
    return data;
  }

  write(data: StateData | Record<string, unknown>): Promise<void> {
    // The document is serialized now, synchronously: later changes in memory go into the next write.
    return writeFileAtomic(this.file, Buffer.from(JSON.stringify(data)), 0o600);
  }
}


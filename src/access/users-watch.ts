/**
 * Watching the users file: its directory is watched (so atomic replacements are seen), and `reload`
 * runs once changes have been quiet for `debounceMs`.
 */
import { mkdirSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

/** Starts watching; returns the closer, or undefined when the directory cannot be watched (logged). */
export function watchUsersFile(file: string, debounceMs: number, log: LogFn, reload: () => void): { close(): void } | undefined {
  const dir = dirname(file);
  const name = basename(file);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  let timer: NodeJS.Timeout | undefined;
  try {
    const watcher = watch(dir, { persistent: false }, (_event, f) => {
      if (f !== null && f !== name) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          reload();
        } catch (e) {
          log('error', `users file: reload failed: ${(e as Error).message}`);
        }
      }, debounceMs);
      timer.unref();
    });
    watcher.on('error', (e) => log('warn', `users file: watching ${dir} failed (${e.message}); reload with SIGHUP`));
    return {
      close: () => {
        clearTimeout(timer);
        watcher.close();
      },
    };
  } catch (e) {
    log('warn', `users file: cannot watch ${dir} (${(e as Error).message}); reload with SIGHUP`);
    return undefined;
  }
}

/**
 * Reactions to the users file changing (a reload or a `users` verb): a connection whose key was
 * removed (or now belongs to someone else) is closed with its sessions; a changed role closes the
 * connection's TUI sessions (verbs use the new role from their next run).
 */
import { EXIT } from '../core/errors.js';
import type { SshCore } from './core.js';
import type { Sessions } from './session.js';

/** Starts reacting; returns the function that stops. */
export function watchUsers(core: SshCore, sessions: Sessions): () => void {
  const { log, users, conns, who, endConn } = core;
  const { closeSessionWith } = sessions;
  const onUsersChange = () => {
    for (const c of conns) {
      if (!c.authed || c.ending) continue;
      const cur = users.byFingerprint(c.fp!);
      if (!cur || cur.user !== c.user) {
        log('warn', `ssh: ${who(c)}: key ${c.fp} was removed from the users file; closing the connection`);
        for (const s of [...c.sessions]) closeSessionWith(s, 'kindler: your key was removed; this connection is closed', EXIT.refused);
        endConn(c);
      } else if (cur.role !== c.role) {
        log('info', `ssh: ${who(c)}: role changed from ${c.role} to ${cur.role}; open TUI sessions are closed (verbs use the new role)`);
        c.role = cur.role;
        for (const s of [...c.sessions]) if (s.kind === 'shell') closeSessionWith(s, `kindler: your role changed to ${cur.role}; reconnect`, EXIT.ok);
      }
    }
  };
  users.on('change', onUsersChange);
  return () => users.off('change', onUsersChange);
}

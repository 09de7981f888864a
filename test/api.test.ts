/**
 * The typed backend (src/commands/api.ts) as the TUI reaches it through a LocalSession: results are
 * the --json verbs' documents, failures are KindlerErrors of the verb's kind, message and field, and
 * a refusal is audited once with the verb and its target; over the control socket (kindler-tui
 * beside a daemon) the same calls travel as typed messages.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { userInfo } from 'node:os';
import { LocalSession } from '../src/commands/session.js';
import { RemoteSession } from '../src/control/client.js';
import { socketPath } from '../src/control/server.js';
import { KindlerError } from '../src/core/errors.js';
import { ALICE, makeWorld, startDaemon, until, verb, withEngine } from './helpers.js';

const rejects = async (p: Promise<unknown>, kind: string, message: RegExp, field?: string) => {
  const e = await p.then(
    () => assert.fail('expected a failure'),
    (x: unknown) => x,
  );
  assert.ok(e instanceof KindlerError, String(e));
  assert.equal(e.kind, kind);
  assert.match(e.message, message);
  if (field) assert.equal(e.field, field);
};

test('session api: typed results equal the --json verbs; typed errors carry kind, message and field', async (t) => {
  const { engine } = await withEngine(t);
  const admin = new LocalSession(engine, ALICE, 'testhost');
  const viewer = new LocalSession(engine, { user: 'vic', source: 'test', role: 'viewer' }, 'testhost');
  t.after(() => {
    admin.close();
    viewer.close();
  });
  // Checked as the CLI checks it, with its message and the field it names.
  await rejects(admin.api.create({ name: 'demo', ttl: 'soon' }), 'usage', /^ttl: /, 'ttl');
  await rejects(admin.api.create({ name: 'demo', httpPort: '80' }), 'usage', /http-port: must be a port number 1024-65535/, 'http-port');
  await rejects(viewer.api.create({ name: 'demo' }), 'refused', /./);
  const task = await admin.api.create({ name: 'demo', agents: '0' });
  assert.equal(task.kind, 'create');
  assert.equal(task.cluster, 'demo');
  await until(engine, () => engine.getTask(task.id)?.state === 'succeeded', 60_000, 'the create');
  const shown = await admin.api.show({ name: 'demo' });
  assert.deepEqual(JSON.parse(JSON.stringify(shown)), JSON.parse((await verb(engine, ['show', 'demo', '--json'])).out));
  const logs = await admin.api.logs({ ref: task.id, tail: 2 });
  assert.deepEqual(logs, JSON.parse((await verb(engine, ['logs', task.id, '--tail', '2', '--json'])).out));
  await rejects(admin.api.show({ name: 'nope' }), 'notFound', /no cluster named "?nope/);
  await rejects(admin.api.logs({ ref: task.id, tail: 0 }), 'usage', /tail: must be a whole number/, 'tail');
  // A refusal is audited once, with the verb and the cluster it was for.
  await rejects(viewer.api.delete({ name: 'demo' }), 'refused', /./);
  const refusals = engine.listAudit({ user: 'vic', limit: 50 }).filter((e) => e.result === 'refused');
  assert.deepEqual(
    refusals.map((e) => [e.action, e.target]),
    [
      ['create', 'demo'],
      ['delete', 'demo'],
    ],
  );
  await rejects(viewer.api.reconcile(), 'refused', /./);
  const ext = await admin.api.extend({ name: 'demo', duration: '1h' });
  assert.equal(ext.name, 'demo');
});

test('kindler-tui over the control socket: typed calls go as call messages and come back as results or KindlerErrors', async (t) => {
  const w = makeWorld();
  const d = await startDaemon(w);
  const remote = new RemoteSession(socketPath(w.cfg.dataDir), 'someone', 'testhost');
  t.after(async () => {
    remote.close();
    await d.stop();
    w.cleanup();
  });
  await rejects(remote.api.create({ name: 'demo', ttl: 'soon' }), 'usage', /^ttl: /, 'ttl');
  await rejects(remote.api.show({ name: 'nope' }), 'notFound', /no cluster named "?nope/);
  const task = await remote.api.create({ name: 'demo', agents: '0' });
  assert.equal(task.cluster, 'demo');
  assert.equal(task.user, userInfo().username, 'the caller comes from the kernel, not the client');
  const shown = await remote.api.show({ name: 'demo' });
  assert.equal(shown.cluster.name, 'demo');
  const r = await remote.api.reconcile({ dryRun: true });
  assert.ok(Array.isArray(r.drift));
  // A malformed call is refused as such.
  const bad = await (remote.api as unknown as Record<string, (a: unknown) => Promise<unknown>>).show!('not an object').then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(bad instanceof KindlerError && bad.kind === 'usage' && bad.message === 'malformed request', String(bad));
});

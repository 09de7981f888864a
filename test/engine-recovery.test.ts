/**
 * Issue 16 (the engine in parts), a bug found on the way: a create stopped by a clean shutdown after it had
 * made the cluster, whose script could not clean up, was left half-made and recorded `running` by the next
 * start, where a create cut short by a crash is cleaned up. The engine in-process, against the fake tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../src/engine/engine.js';
import { makeWorld, poll, startEngine, verb } from './helpers.js';

test('a create cut short by shutdown whose own cleanup failed is cleaned up at the next start, not recorded running', async (t) => {
  const w = makeWorld();
  let second: Engine | undefined;
  t.after(async () => {
    await second?.shutdown();
    w.cleanup();
  });
  w.rule('kubectl.wait', 'hang');
  w.rule('k3d.cluster-delete', 'fail 1 cannot remove container: device or resource busy');
  const first = await startEngine(w);
  assert.equal((await verb(first, ['create', 'half', '--json'])).code, 0);
  await poll(() => w.calls().includes('"wait"'), 20000, 'the script to reach kubectl wait');
  await first.shutdown();
  const cut = first.listTasks({ cluster: 'half' })[0]!;
  assert.equal(cut.state, 'interrupted');
  assert.equal(cut.cleanup, 'failed', "the script's own cleanup failed");
  assert.ok(w.containers('half').length > 0, 'the half-made cluster is still there');

  // Whatever held the containers is gone by the next start.
  w.clearRule('k3d.cluster-delete');
  second = await startEngine(w);
  await second.idle();
  const c = second.getCluster('half');
  assert.notEqual(c?.actual, 'running', 'a create that never finished is not a running cluster');
  assert.deepEqual(w.containers('half'), [], 'kindler removed what the create made');
  assert.equal(c?.actual, 'absent');
  assert.equal(c?.lastError, `create task ${cut.id} was interrupted; what it had made was removed; run create again to retry`);
  assert.equal(second.getTask(cut.id)?.cleanup, 'done');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameProblem, RESERVED_NAMES } from '../src/core/names.js';
import { allocatePort, parsePort } from '../src/core/ports.js';
import { parseDuration, formatDuration } from '../src/core/duration.js';
import { parseEnvironmentsCsv } from '../src/core/csv.js';
import { parseMarker, progressAt } from '../src/core/markers.js';
import { sanitizeLine } from '../src/core/text.js';
import { checkCreateRequest, parseSubnet, subnetsOverlap } from '../src/core/spec.js';
import { KindlerError } from '../src/core/errors.js';

test('names: each broken rule is named', () => {
  assert.equal(nameProblem('dev', 'k3d'), null);
  assert.equal(nameProblem('a1-b2', 'kind'), null);
  assert.match(nameProblem('', 'k3d')!, /must not be empty/);
  assert.match(nameProblem('Dev', 'k3d')!, /start with a lowercase letter/);
  assert.match(nameProblem('1dev', 'k3d')!, /start with a lowercase letter/);
  assert.match(nameProblem('dev_1', 'k3d')!, /DNS label/);
  assert.match(nameProblem('dev.x', 'kind')!, /DNS label/);
  assert.match(nameProblem('dev-', 'k3d')!, /must not end with "-"/);
  assert.match(nameProblem('a'.repeat(33), 'k3d')!, /at most 32 characters for k3d/);
  assert.equal(nameProblem('a'.repeat(33), 'kind'), null);
  assert.match(nameProblem('a'.repeat(41), 'kind')!, /at most 40 characters for kind/);
  for (const r of ['devops', 'kindler', 'haproxy', 'portainer', 'argocd', 'git', 'main', 'master', 'default']) {
    assert.ok(RESERVED_NAMES.includes(r));
    assert.match(nameProblem(r, 'k3d')!, /reserved/);
  }
  assert.match(nameProblem('dev\x1b[31m', 'k3d')!, /DNS label/);
});

test('ports: parse and allocate', () => {
  assert.equal(parsePort('http-port', '18080'), 18080);
  for (const bad of ['0', '65536', '-1', 'abc', '80.5', '', ' 80']) {
    assert.throws(
      () => parsePort('http-port', bad),
      (e: KindlerError) => e.kind === 'usage' && /^http-port: /.test(e.message),
    );
  }
  assert.equal(allocatePort({ from: 10, to: 12 }, new Set([10, 11])), 12);
  assert.equal(allocatePort({ from: 10, to: 11 }, new Set([10, 11])), null);
});

test('durations', () => {
  assert.equal(parseDuration('ttl', '2h'), 7_200_000);
  assert.equal(parseDuration('ttl', '1h30m'), 5_400_000);
  assert.equal(parseDuration('ttl', '1d'), 86_400_000);
  for (const bad of ['', '2', 'h', '2x', '-1h', '0m', '400d']) assert.throws(() => parseDuration('ttl', bad), /^Error: ttl: /);
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(45_000), '45s');
});

test('subnets and create requests', () => {
  assert.ok(subnetsOverlap(parseSubnet('10.101.0.0/16'), parseSubnet('10.101.4.0/24')));
  assert.ok(!subnetsOverlap(parseSubnet('10.101.0.0/16'), parseSubnet('10.102.0.0/16')));
  assert.throws(() => parseSubnet('10.101.0.1/16'), /network address/);
  assert.throws(() => parseSubnet('10.300.0.0/16'), /octet/);
  assert.throws(() => checkCreateRequest({ name: 'dev', provider: 'kind', servers: 1, agents: 0, subnet: '10.1.0.0/16' }), /subnet: only k3d/);
  assert.throws(
    () => checkCreateRequest({ name: 'dev', provider: 'k3d', servers: 1, agents: 0, httpPort: 18080, httpsPort: 18080 }),
    /https-port: must differ from http-port/,
  );
  assert.throws(() => checkCreateRequest({ name: 'dev', provider: 'k3d', servers: 1, agents: 21 }), /agents: must be a whole number 0-20/);
});

test('CSV import rows: imported or refused with the reason', () => {
  const text = [
    '# env,provider,node_port,pf_port,register_portainer,haproxy_route,http_port,https_port,cluster_subnet',
    'devops,k3d,30080,19000,true,true,18080,18443,10.100.0.0/16',
    'dev,k3d,30080,19001,true,true,18090,18443,10.101.0.0/16',
    '',
    'dev-a,kind,30081,19011,true,true,18093,18446,',
    'bad,k3d,30080,19001,maybe,true,18090,18443,',
    'short,k3d',
    'kindsub,kind,30081,19011,true,true,18094,18447,10.9.0.0/16',
  ].join('\n');
  const rows = parseEnvironmentsCsv(text);
  assert.equal(rows.length, 6);
  assert.match(rows[0]!.error!, /"devops" is reserved/);
  assert.equal(rows[1]!.request!.httpPort, 18090);
  assert.equal(rows[1]!.request!.subnet, '10.101.0.0/16');
  assert.equal(rows[1]!.request!.ingressNodePort, 30080);
  assert.equal(rows[2]!.request!.provider, 'kind');
  assert.equal(rows[2]!.line, 5);
  assert.match(rows[3]!.error!, /register_portainer: must be true\/false/);
  assert.match(rows[4]!.error!, /expected 9/);
  assert.match(rows[5]!.error!, /subnet: only k3d/);
});

test('markers', () => {
  assert.deepEqual(parseMarker('::kindler:step 2/5 create-cluster Creating the cluster'), {
    type: 'step',
    n: 2,
    of: 5,
    key: 'create-cluster',
    title: 'Creating the cluster',
  });
  assert.deepEqual(parseMarker('::kindler:result {"a":1}'), { type: 'result', value: { a: 1 } });
  assert.equal(parseMarker('::kindler:result [1]')!.type, 'invalid');
  assert.equal(parseMarker('::kindler:step 6/5 x')!.type, 'invalid');
  assert.deepEqual(parseMarker('::kindler:cleanup failed k3d said no'), { type: 'cleanup', phase: 'failed', text: 'k3d said no' });
  assert.equal(parseMarker('INFO[0000] hello'), null);
  assert.equal(progressAt(1, 5), 0);
  assert.equal(progressAt(3, 4), 50);
});

test('sanitize strips escapes and controls, keeps unicode', () => {
  assert.equal(sanitizeLine('\x1b[36mINFO\x1b[0m[0004] ok ✓'), 'INFO[0004] ok ✓');
  assert.equal(sanitizeLine('a\x1b]0;title\x07b'), 'ab');
  assert.equal(sanitizeLine('x\x00\x07\x08y\x85z'), 'xyz');
  assert.equal(sanitizeLine('a\x9b31mb'), 'ab');
  assert.equal(sanitizeLine('\x1bPqevil\x1b\\ok'), 'ok');
  assert.equal(sanitizeLine('tab\there'), 'tab  here');
});

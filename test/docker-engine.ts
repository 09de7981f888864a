/**
 * The real docker engine under the tests (see README, Tests).
 *
 * - `KINDLER_TEST_DOCKER_HOST` set (`.ci/run` starts a private engine and sets it; or point it at a
 *   running one, e.g. unix:///var/run/docker.sock): every engine test uses that engine. If it does
 *   not answer, every engine test FAILS with the reason.
 * - Not set: this test file starts a private engine of its own (test/engine/dockerd.sh, as root) and
 *   stops it when the file ends. If the engine cannot start at all (no dockerd, not root, no
 *   namespaces), every engine test is SKIPPED with the daemon's own error line. `.ci/run` never takes
 *   that path: it fails when its engine does not start.
 * In both cases the test node image (test/engine/image.sh) is built on the engine when missing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { ROOT } from './helpers.js';

export const ENGINE_DIR = join(ROOT, 'test', 'engine');
const DOCKERD_SH = join(ENGINE_DIR, 'dockerd.sh');
const IMAGE_SH = join(ENGINE_DIR, 'image.sh');

export type Availability = { host: string } | { skip: string } | { error: string };

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}

/** Does the engine at `host` answer? null when it does, else docker's own error line. */
export function engineProblem(host: string): string | null {
  const r = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], {
    env: { ...process.env, DOCKER_HOST: host },
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.error) return `docker: ${r.error.message}`;
  return r.status === 0 ? null : firstLine(r.stderr) || `docker version exited ${r.status}`;
}

/** Builds (or finds current) the test node image on the engine at `host`; throws with image.sh's reason. */
export function buildImage(host: string): void {
  const r = spawnSync('bash', [IMAGE_SH], { env: { ...process.env, DOCKER_HOST: host }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`the test node image could not be built: ${firstLine(r.stderr) || firstLine(r.stdout) || `exit ${r.status}`}`);
}

/** A private engine in its own directory: start it, stop it (keeping its data), start it again. */
export class PrivateEngine {
  readonly dir: string;
  host = '';
  constructor(dir = mkdtempSync(join(tmpdir(), 'kindler-engine-'))) {
    this.dir = dir;
  }
  /** Starts the engine; returns null, or the daemon's own error line when it cannot start. */
  start(): string | null {
    const r = spawnSync('bash', [DOCKERD_SH, 'start', this.dir], { encoding: 'utf8', timeout: 90_000 });
    if (r.status !== 0) return firstLine(r.stderr) || `dockerd.sh start exited ${r.status}`;
    this.host = r.stdout.trim();
    return null;
  }
  /** Stops the engine and keeps its data (a later start finds the same containers, stopped). */
  stop(): void {
    execFileSync('bash', [DOCKERD_SH, 'stop', this.dir], { stdio: 'inherit', timeout: 60_000 });
  }
  /** Stops the engine and removes everything it had. */
  destroy(): void {
    execFileSync('bash', [DOCKERD_SH, 'destroy', this.dir], { stdio: 'inherit', timeout: 60_000 });
  }
}

let cached: Availability | undefined;

/** The engine this test file runs on (see the file comment). */
export function dockerEngine(): Availability {
  if (cached) return cached;
  const told = process.env.KINDLER_TEST_DOCKER_HOST;
  if (told) {
    const problem = engineProblem(told);
    if (problem) return (cached = { error: `KINDLER_TEST_DOCKER_HOST=${told} does not answer: ${problem}` });
    try {
      buildImage(told);
    } catch (e) {
      return (cached = { error: (e as Error).message });
    }
    return (cached = { host: told });
  }
  const own = new PrivateEngine();
  const why = own.start();
  if (why) {
    try {
      own.destroy();
    } catch {
      /* nothing was started */
    }
    return (cached = { skip: `no docker engine can start here (${why}); set KINDLER_TEST_DOCKER_HOST or run bash .ci/run` });
  }
  // When this file's tests are done (the test runner may end the process without an 'exit' event).
  after(() => own.destroy());
  try {
    buildImage(own.host);
  } catch (e) {
    return (cached = { error: (e as Error).message });
  }
  return (cached = { host: own.host });
}

/**
 * A test that needs the engine: skipped (with the reason) only when no engine can start here,
 * failed with the reason when the engine it was told to use does not answer.
 */
export function engineTest(name: string, fn: (t: TestContext, host: string) => Promise<void>, opts: { timeout?: number } = {}): void {
  const a = dockerEngine();
  test(name, { skip: 'skip' in a ? a.skip : false, timeout: opts.timeout ?? 240_000 }, async (t) => {
    if ('error' in a) throw new Error(a.error);
    if ('host' in a) await fn(t, a.host);
  });
}

/** Runs docker against `host`; returns stdout, throws with docker's stderr on failure. */
export function docker(host: string, args: string[], input?: string | Buffer): string {
  const r = spawnSync('docker', args, { env: { ...process.env, DOCKER_HOST: host }, encoding: 'utf8', input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

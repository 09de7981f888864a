/**
 * A failed-login flood for test/stress/login-flood.test.ts, run as its own process so its CPU is not
 * the server's event loop: WIDTH concurrent ssh2 clients from 127.0.0.1, each logging in with a key
 * that is not in the users file, again and again. Prints "attempts N" after every 10 attempts and
 * "LOGGED IN" if one ever gets in. Stops when stdin closes (the test ended) or on SIGTERM.
 *
 *   node --import tsx test/stress/login-flood-client.ts PORT KEYFILE WIDTH
 */
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const [portArg, keyFile, widthArg] = process.argv.slice(2);
const port = Number(portArg);
const width = Math.max(1, Math.min(32, Number(widthArg) || 4));
const key = readFileSync(keyFile!);
let attempts = 0;
let stopping = false;
process.stdin.on('end', () => process.exit(0));
process.stdin.on('data', () => undefined);
process.on('SIGTERM', () => process.exit(0));

function attempt(): Promise<void> {
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    c.on('ready', () => {
      process.stdout.write('LOGGED IN\n');
      c.end();
    });
    c.on('error', () => undefined);
    c.on('close', () => resolve());
    c.connect({ host: '127.0.0.1', localAddress: '127.0.0.1', port, username: 'kindler', privateKey: key, readyTimeout: 30_000 });
  });
}

async function loop(): Promise<void> {
  while (!stopping) {
    await attempt();
    if (++attempts % 10 === 0) process.stdout.write(`attempts ${attempts}\n`);
  }
}

process.stdout.write('flood started\n');
await Promise.all(Array.from({ length: width }, () => loop()));
stopping = true;

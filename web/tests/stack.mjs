// What the browser tests share: paths, the local stack (`chat-local`,
// started per test file on 127.0.0.1 in memory) and the browser.
//
//   CHAT_LOCAL_BIN   the chat-local binary (default <repo>/target/debug/chat-local)
//   MINT_TOKEN_BIN   its token minter (default: mint-token next to chat-local)
//   CHROMIUM_BIN     the browser (default /usr/bin/chromium)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, '..');
export const repo = path.resolve(here, '..', '..');
export const chatLocal = process.env.CHAT_LOCAL_BIN || path.join(repo, 'target', 'debug', 'chat-local');
/** Mints test sign-in tokens; built next to chat-local. */
export const mintToken = process.env.MINT_TOKEN_BIN || path.join(path.dirname(chatLocal), 'mint-token');
export const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const artifacts = path.join(here, 'artifacts');

// ---------------------------------------------------------------- tokens

/** Seconds since the epoch, as tokens count time. */
export const now = () => Math.floor(Date.now() / 1000);

/** An HS256 JSON Web Token signed here, with any claims (an expired one, rooms, roles). */
export function signHs256(claims, secret) {
  const part = (object) => Buffer.from(JSON.stringify(object)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${signed}.${crypto.createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

// ------------------------------------------------------------- the stack

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts chat-local on 127.0.0.1 and waits for its banner. */
export async function startStack({ port = 0, pollMs = 50, args = [] } = {}) {
  const child = spawn(
    chatLocal,
    [
      '--in-memory',
      '--listen', `127.0.0.1:${port}`,
      '--dynamodb-listen', '127.0.0.1:0',
      '--stream-poll-ms', String(pollMs),
      '--web-dir', webDir,
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  );
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));

  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`chat-local printed no banner in 20 s.\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, 20_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${chatLocal}: ${error.message}. Build it with \`cargo build -p chat-local\` or set CHAT_LOCAL_BIN.`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`chat-local exited (${code ?? signal}) before its banner.\nstderr:\n${stderr}`));
    });
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const page = /Chat page\s+(http:\/\/\S+)/.exec(stdout);
      const ws = /WebSocket URL\s+(ws:\/\/\S+)/.exec(stdout);
      if (page && ws) {
        clearTimeout(timer);
        resolve({ page: page[1], ws: ws[1] });
      }
    });
  });

  return {
    ...urls,
    port: Number(new URL(urls.page).port),
    stderr: () => stderr,
    /** SIGTERM (the server closes sockets with 1001) or SIGKILL (1006). */
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(resolve, 10_000, 'timeout');
      });
      const how = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (how === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** SIGTERM to every stack still running; resolves when they have exited. */
export async function stopAllStacks() {
  await Promise.all([...children].map((child) => {
    child.kill('SIGTERM');
    return new Promise((resolve) => child.once('exit', resolve));
  }));
}

/** Checks the binaries are there and launches headless Chromium. */
export async function launchBrowser() {
  assert.ok(fs.existsSync(chatLocal), `no chat-local at ${chatLocal}: run \`cargo build -p chat-local\` or set CHAT_LOCAL_BIN`);
  assert.ok(fs.existsSync(chromiumPath), `no browser at ${chromiumPath}: apt-get install chromium`);
  fs.mkdirSync(artifacts, { recursive: true });
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
}

// What the chat page's browser tests share: the browser and the shared
// stack (started once per test file), and how a test drives a page.

import { after, afterEach, before } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { launchBrowser, startStack, stopAllStacks } from './stack.mjs';

export const HOSTILE = '<img src=x onerror=alert(1)>';
export const TEST_TIMEOUT = 60_000;

/**
 * Registers the file's hooks: a browser, and a stack shared by the tests
 * that need no special server settings (or the file's `stackArgs`), handed
 * to `onReady` (Node 20 does not wait for one `before` hook before starting
 * the next). Each test's browser contexts close after it, so no test sees
 * another's presence lines.
 */
export function browserTests(onReady = () => {}, { stackArgs = [] } = {}) {
  const contexts = new Set();
  const session = {
    browser: null,
    stack: null,
    async newContext(options = {}) {
      const context = await session.browser.newContext({ viewport: { width: 900, height: 720 }, ...options });
      context.setDefaultTimeout(10_000);
      contexts.add(context);
      // Runs before the page's own script; CSP does not apply to it.
      await context.addInitScript(() => {
        window.__csp = [];
        document.addEventListener('securitypolicyviolation', (event) => {
          window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`);
        });
      });
      return context;
    },
  };
  before(async () => {
    session.browser = await launchBrowser();
    session.stack = await startStack({ args: stackArgs });
    onReady(session.stack);
  });
  afterEach(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    contexts.clear();
    for (const ws of outsiders) ws.close();
    outsiders.clear();
  });
  after(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    if (session.browser) await session.browser.close();
    await stopAllStacks();
  });
  return session;
}

// People outside the browser: closed after each test.
const outsiders = new Set();

/**
 * A WebSocket client in this process, as wscat would be, connected to
 * `wsUrl` with `query` (`room`, `name`, `token`); rejects with the HTTP
 * status of a refused handshake. `next(wanted, what)` waits for a frame.
 */
export function chatClient(wsUrl, query) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}?${new URLSearchParams(query)}`);
    const frames = [];
    ws.on('message', (data) => frames.push(JSON.parse(String(data))));
    const next = (wanted, what) => waitUntil(() => frames.some(wanted), 10_000, what).then(() => frames.find(wanted));
    ws.once('open', () => {
      outsiders.add(ws);
      resolve({ ws, frames, next });
    });
    ws.once('unexpected-response', (_, response) => reject(new Error(`handshake refused: HTTP ${response.statusCode}`)));
    ws.once('error', reject);
  });
}

/** Opens a page and records what must never happen on it. */
export async function openPage(context, url) {
  const page = await context.newPage();
  page.problems = [];
  page.sockets = [];
  page.console = [];
  page.on('console', (message) => page.console.push({ type: message.type(), text: message.text() }));
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('dialog', (dialog) => {
    page.problems.push(`dialog: ${dialog.type()} ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), createdAt: Date.now(), closedAt: 0, sent: [], received: [] };
    page.sockets.push(socket);
    ws.on('framesent', (frame) => socket.sent.push(frame.payload));
    ws.on('framereceived', (frame) => socket.received.push(frame.payload));
    ws.on('close', () => {
      socket.closedAt = Date.now();
    });
  });
  await page.goto(url);
  await page.waitForSelector('#app[data-ready="true"]');
  return page;
}

export async function assertClean(page) {
  const csp = await page.evaluate(() => window.__csp);
  assert.deepEqual(page.problems, [], 'no page errors or dialogs');
  assert.deepEqual(csp, [], 'no Content-Security-Policy violations');
}

export const state = (page) => page.getAttribute('#app', 'data-state');
export const statusText = async (page) => (await page.textContent('#status-line')).trim();

export async function waitForState(page, wanted, timeout = 10_000) {
  await page.waitForFunction((s) => document.getElementById('app').dataset.state === s, wanted, { timeout, polling: 50 });
}

/** Waits for the welcome frame; returns this page's connection id. */
export async function waitForWelcome(page, not = '') {
  await page.waitForFunction(
    (old) => {
      const id = document.getElementById('app').dataset.connectionId;
      return id !== '' && id !== old;
    },
    not,
    { polling: 50 },
  );
  return page.getAttribute('#app', 'data-connection-id');
}

/** Connects; returns the connection id once the first history page is in. */
export async function connect(page, url) {
  if (url !== undefined) await page.fill('#ws-url', url);
  await page.click('#connect');
  await waitForState(page, 'connected');
  const id = await waitForWelcome(page);
  await waitForHistory(page);
  return id;
}

/**
 * Waits until the current connection's history is in (its marker no longer
 * says it is loading) and no older page is on its way.
 */
export async function waitForHistory(page, timeout = 10_000) {
  await page.waitForFunction(() => {
    const markers = document.querySelectorAll('#log li.marker');
    const last = markers[markers.length - 1];
    return last !== undefined && last.dataset.marker !== 'loading'
      && document.getElementById('log-top').dataset.state !== 'loading';
  }, null, { timeout, polling: 50 });
}

export async function send(page, text) {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

export async function waitForMessages(page, count, timeout = 10_000) {
  await page.waitForFunction((n) => document.querySelectorAll('#log li.msg').length >= n, count, { timeout, polling: 50 });
}

/** Waits for a chat message with exactly this text. */
export async function waitForText(page, text, timeout = 10_000) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#log li.msg .text')].some((el) => el.textContent === t),
    text,
    { timeout, polling: 50 },
  );
}

export async function waitForLine(page, pattern) {
  await page.waitForFunction(
    ([source, flags]) => [...document.querySelectorAll('#log li')].some((li) => new RegExp(source, flags).test(li.textContent)),
    [pattern.source, pattern.flags],
    { polling: 50 },
  );
}

export function messages(page) {
  return page.$$eval('#log li.msg', (items) => items.map((li) => ({
    sender: li.dataset.sender,
    own: li.classList.contains('own'),
    who: li.querySelector('.who').textContent,
    text: li.querySelector('.text').textContent,
  })));
}

/** Every line of the log, as a test reads it. */
export function logLines(page) {
  return page.$$eval('#log > li', (items) => items.map((li) => {
    if (li.classList.contains('msg')) {
      return {
        kind: li.classList.contains('history') ? 'history' : 'live',
        id: li.dataset.messageId,
        sender: li.dataset.sender,
        name: li.dataset.name || '',
        own: li.classList.contains('own'),
        who: li.querySelector('.who').textContent,
        senderId: li.querySelector('.sender-id').textContent,
        text: li.querySelector('.text').textContent,
      };
    }
    if (li.classList.contains('marker')) return { kind: 'marker', marker: li.dataset.marker, text: li.textContent };
    return { kind: 'system', text: li.textContent };
  }));
}

export const sentActions = (page, action) => page.sockets.flatMap((s) => s.sent)
  .filter((payload) => {
    try {
      return JSON.parse(payload).action === action;
    } catch {
      return false;
    }
  });

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export async function waitUntil(condition, timeout, what) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// Browser tests of sign-in in the web client: the optional Token field
// against a local stack that requires a token (`--auth-jwt-secret`). Tokens
// are minted with `mint-token` (built with chat-local) and, for the ones it
// will not make (expired), signed here with Node's crypto (HS256, as
// `jsonwebtoken` signs). Other people are WebSocket clients (`ws`).
//
// Run with web/tests/run.sh, or `npm test` in web/tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  TEST_TIMEOUT, assertClean, browserTests, chatClient as outsideClient, connect, escapeRegExp, logLines, openPage, send,
  statusText, waitForHistory, waitForLine, waitForState, waitForText, waitForWelcome,
} from './pages.mjs';
import { artifacts, mintToken, now, signHs256 } from './stack.mjs';

const SECRET = 'web-tests-secret, of 32 bytes ok.';
let stack;
const session = browserTests((shared) => {
  stack = shared;
}, { stackArgs: ['--auth-jwt-secret', SECRET] });
const newContext = (options) => session.newContext(options);

// ------------------------------------------------------------------ tokens

/** A token from `mint-token` (HS256). */
function mint(...args) {
  return execFileSync(mintToken, args, { encoding: 'utf8' }).trim();
}


/** 2026-11-28 09:00:00 UTC, as the page writes times. */
function utc(seconds) {
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

// ------------------------------------------------- people outside the browser

/** A WebSocket client in this process (closed after each test). */
const chatClient = (query) => outsideClient(stack.ws, query);

// ------------------------------------------------------ what must not show

/**
 * The token is nowhere a person or a screenshot could see it: not in the
 * page's address, its text or markup, nor in anything the page logged.
 * Chromium itself reports a refused WebSocket handshake in the console with
 * the socket's URL (`WebSocket connection to 'ws://…?…&token=…' failed: …`);
 * a page cannot stop that, and it is the only console line allowed to hold
 * the token. Returns how many such lines there were.
 */
async function assertTokenHidden(page, ...tokens) {
  const address = page.url();
  const markup = await page.content();
  const text = await page.evaluate(() => `${document.title}\n${document.body.innerText}`);
  const local = await page.evaluate(() => JSON.stringify({ ...window.localStorage }));
  let browserLines = 0;
  for (const token of tokens) {
    assert.ok(!address.includes(token), `the token is not in the address ${address}`);
    assert.ok(!markup.includes(token), 'the token is not in the page markup');
    assert.ok(!text.includes(token), 'the token is not in the page text');
    assert.ok(!stack.stderr().includes(token), 'the token is not in the stack\'s log');
    for (const { type, text: line } of page.console) {
      if (!line.includes(token)) continue;
      assert.match(line, /^WebSocket connection to 'ws:\/\/[^']*' failed: /, `only Chromium's own handshake report holds the token (${type})`);
      browserLines += 1;
    }
    // Kept for the tab (sessionStorage) unless "Remember" is ticked.
    if (!(await page.isChecked('#remember-token'))) assert.ok(!local.includes(token), 'the token is not in localStorage');
  }
  return browserLines;
}

const connectError = (page) => page.textContent('#connect-error');

async function waitForConnectError(page, pattern) {
  await page.waitForFunction(
    ([source, flags]) => new RegExp(source, flags).test(document.getElementById('connect-error').textContent),
    [pattern.source, pattern.flags],
    { polling: 50 },
  );
}

const REFUSED = '(the browser is not told which, or why).';

// ----------------------------------------------------------------- tests

test('sign-in: a valid token connects, and the name is the token\'s whatever the name field said; the token stays out of sight', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'signed';
  const alice = mint('--secret', SECRET, '--sub', 'alice', '--name', 'Alice');
  const context = await newContext();
  const page = await openPage(context, `${stack.page}?room=${room}`);
  assert.equal(await page.getAttribute('#token', 'type'), 'password');

  // A name typed first; the token then names the user instead.
  await page.fill('#name', 'Mallory');
  await page.fill('#token', alice);
  assert.equal(await page.isDisabled('#name'), true);
  assert.equal(await page.inputValue('#name'), '');
  assert.equal(await page.getAttribute('#name', 'placeholder'), 'from your token');
  const aliceId = await connect(page);
  assert.equal(page.sockets[0].url, `${stack.ws}?room=${room}&token=${alice}`, 'the token is sent, the name is not');
  await waitForLine(page, new RegExp(`^Welcome to #${room}! You are Alice \\(${escapeRegExp(aliceId)}\\)\\.$`));
  await waitForLine(page, new RegExp(`^Connected to #${room} \\(${escapeRegExp(stack.ws)}\\) at `));

  // Someone else, signed in with a token signed here, who also asks for a
  // name: the server takes the token's.
  const bobToken = signHs256({ sub: 'bob', name: 'Bob', iat: now(), exp: now() + 600 }, SECRET);
  const bob = await chatClient({ room, name: 'Mallory', token: bobToken });
  const welcome = await bob.next((f) => f.type === 'welcome', 'welcome');
  assert.equal(welcome.name, 'Bob');
  await waitForLine(page, new RegExp(`^Bob \\(${escapeRegExp(welcome.connection_id)}\\) joined\\.$`));

  await send(page, 'Hello from Alice');
  const heard = await bob.next((f) => f.type === 'message' && f.text === 'Hello from Alice', 'Alice\'s message');
  assert.equal(heard.name, 'Alice');
  assert.equal(heard.connection_id, aliceId);
  assert.ok(!('user_id' in heard), 'the user id is not sent to others');
  bob.ws.send(JSON.stringify({ action: 'sendmessage', message: 'Hi Alice' }));
  await waitForText(page, 'Hi Alice');
  const lines = (await logLines(page)).filter((l) => l.kind === 'live');
  assert.deepEqual(lines.map(({ who, name, text }) => ({ who, name, text })), [
    { who: 'You', name: 'Alice', text: 'Hello from Alice' },
    { who: 'Bob', name: 'Bob', text: 'Hi Alice' },
  ]);
  assert.doesNotMatch(await page.textContent('#log'), /Mallory/);

  // Kept for this tab only.
  assert.equal(await page.evaluate(() => window.sessionStorage.getItem('chat.token')), alice);
  assert.equal(await page.evaluate(() => window.localStorage.getItem('chat.token')), null);
  assert.equal(await page.evaluate(() => window.localStorage.getItem('chat.websocketUrl')), stack.ws);
  assert.equal(await assertTokenHidden(page, alice, bobToken), 0, 'no console line at all holds the token');

  // A reload reconnects with it, still named by it.
  await page.reload();
  await page.waitForSelector('#app[data-ready="true"]');
  const again = await waitForWelcome(page, aliceId);
  await waitForHistory(page);
  assert.equal(page.sockets.at(-1).url, `${stack.ws}?room=${room}&token=${alice}`);
  assert.equal(await page.isDisabled('#name'), true);
  await waitForLine(page, new RegExp(`^Welcome to #${room}! You are Alice \\(${escapeRegExp(again)}\\)\\.$`));

  // "Remember": kept in this browser (another tab has it), not in the tab's storage.
  await page.check('#remember-token');
  assert.equal(await page.evaluate(() => window.localStorage.getItem('chat.token')), alice);
  assert.equal(await page.evaluate(() => window.sessionStorage.getItem('chat.token')), null);
  const tab = await openPage(context, `${stack.page}?room=${room}`);
  assert.equal(await tab.inputValue('#token'), alice);
  assert.equal(await tab.isChecked('#remember-token'), true);
  await tab.uncheck('#remember-token');
  assert.equal(await tab.evaluate(() => window.localStorage.getItem('chat.token')), null, 'unticked: forgotten by the browser');
  assert.equal(await tab.evaluate(() => window.sessionStorage.getItem('chat.token')), alice, 'but kept for the tab');
  await tab.close();
  await page.screenshot({ path: path.join(artifacts, 'signin.png') });

  // The token cleared while connected: the typed name comes back, and the
  // page reconnects without a token, which this server refuses.
  await page.fill('#token', '');
  assert.equal(await page.isDisabled('#name'), false);
  assert.equal(await page.inputValue('#name'), 'Mallory');
  await page.press('#token', 'Enter');
  await waitForConnectError(page, /requires sign-in/);
  assert.equal(page.sockets.at(-1).url, `${stack.ws}?room=${room}&name=Mallory`);
  await page.click('#disconnect');
  await waitForState(page, 'disconnected');
  assert.equal(await page.evaluate(() => window.localStorage.getItem('chat.token')), null);
  assert.equal(await page.evaluate(() => window.sessionStorage.getItem('chat.token')), null);
  await assertTokenHidden(page, alice, bobToken);
  await assertClean(page);
});

test('sign-in: an expired token, a wrong-secret token and no token are refused, and the page says what to check', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'refused';
  const expiredAt = now() - 3600;
  const expired = signHs256({ sub: 'alice', name: 'Alice', iat: expiredAt - 600, exp: expiredAt }, SECRET);
  const forged = mint('--secret', 'not-the-secret', '--sub', 'alice', '--name', 'Alice');
  const good = mint('--secret', SECRET, '--sub', 'alice', '--name', 'Alice');
  const page = await openPage(await newContext(), `${stack.page}?room=${room}`);

  // Expired: the page can read when, and says so.
  await page.fill('#token', expired);
  await page.click('#connect');
  await waitForConnectError(page, /./);
  assert.equal(page.sockets[0].url, `${stack.ws}?room=${room}&token=${expired}`);
  assert.equal(
    await connectError(page),
    `The server refused the connection to #${room} with your token, or could not be reached ${REFUSED} `
      + `Check your token: it expired at ${utc(expiredAt)} (by this computer’s clock); get a new one. `
      + 'Check also the room (it may be members-only, or a moderator may have banned you from it), '
      + `and that the server is running at ${stack.ws}.`,
  );
  assert.equal(await page.getAttribute('#app', 'data-last-close'), '1006');
  assert.match(await statusText(page), /^Error: connection refused or server unreachable — reconnecting in \d s…$/);
  // The server did refuse it, with 403 (the page cannot know this; the test can).
  await assert.rejects(chatClient({ room, token: expired }), /HTTP 403/);
  await page.screenshot({ path: path.join(artifacts, 'signin-refused.png') });
  await page.click('#disconnect');
  await waitForState(page, 'disconnected');

  // Signed with another secret: it looks fine to the page.
  await page.fill('#token', forged);
  await page.click('#connect');
  await waitForConnectError(page, /./);
  assert.equal(
    await connectError(page),
    `The server refused the connection to #${room} with your token, or could not be reached ${REFUSED} `
      + 'Check your token: it may have expired, or be meant for another server. '
      + 'Check also the room (it may be members-only, or a moderator may have banned you from it), '
      + `and that the server is running at ${stack.ws}.`,
  );
  await assert.rejects(chatClient({ room, token: forged }), /HTTP 403/);
  await page.click('#disconnect');
  await waitForState(page, 'disconnected');

  // No token, on a server whose /config.json says sign-in is on.
  await page.fill('#token', '');
  await page.fill('#name', 'Eve');
  await page.click('#connect');
  await waitForConnectError(page, /./);
  assert.equal(page.sockets.at(-1).url, `${stack.ws}?room=${room}&name=Eve`);
  assert.equal(
    await connectError(page),
    `The server refused the connection to #${room} as “Eve”, or could not be reached ${REFUSED} `
      + 'This chat requires sign-in and no token was given: paste your token into the Token field. '
      + `Check also that the server is running at ${stack.ws}.`,
  );
  await assert.rejects(chatClient({ room, name: 'Eve' }), /HTTP 401/);

  // Not a token at all: said next to the field, nothing sent, and the
  // retries go on with what was there before.
  const sockets = page.sockets.length;
  await page.fill('#token', 'my password');
  await page.press('#token', 'Enter');
  assert.equal(
    await page.textContent('#token-error'),
    'This is not a token: a sign-in token (JWT) is three parts of letters, digits, - and _ joined by dots.',
  );
  assert.equal(await page.getAttribute('#token', 'aria-invalid'), 'true');
  assert.equal(page.sockets.length, sockets, 'nothing sent for it');

  // A good token pasted while the page retries (with `Bearer ` and a space
  // where a terminal wrapped it): it connects, and the message goes.
  await page.fill('#token', `Bearer ${good.slice(0, 40)} ${good.slice(40)}`);
  assert.equal(await page.textContent('#token-error'), '');
  await page.press('#token', 'Enter');
  await waitForState(page, 'connected');
  const id = await waitForWelcome(page);
  assert.equal(page.sockets.at(-1).url, `${stack.ws}?room=${room}&token=${good}`);
  await waitForLine(page, new RegExp(`^Welcome to #${room}! You are Alice \\(${escapeRegExp(id)}\\)\\.$`));
  assert.equal(await connectError(page), '');

  // Chromium reported each refused handshake in the console, with its URL;
  // the page itself logged nothing.
  const reported = await assertTokenHidden(page, expired, forged, good);
  assert.ok(reported >= 2, `Chromium's own handshake reports (${reported})`);
  assert.ok(page.console.every((m) => /^WebSocket connection to /.test(m.text)), JSON.stringify(page.console));
  await assertClean(page);
});

test('sign-in: a token in the page address or in a pasted URL goes into the field and out of every address', { timeout: TEST_TIMEOUT }, async () => {
  const token = mint('--secret', SECRET, '--sub', 'grace', '--name', 'Grace');
  const context = await newContext();

  // A link with ?token=: taken out of the address at once.
  const page = await openPage(context, `${stack.page}?room=linked&token=${token}&heartbeat=30`);
  const address = new URL(page.url());
  assert.equal(address.searchParams.get('token'), null);
  assert.equal(address.searchParams.get('room'), 'linked');
  assert.equal(address.searchParams.get('heartbeat'), '30');
  assert.equal(await page.inputValue('#token'), token);
  assert.equal(await page.isDisabled('#name'), true);

  // A WebSocket URL pasted with ?room= and ?token= in it.
  await page.fill('#token', '');
  await page.fill('#ws-url', `${stack.ws}?token=${token}&room=pasted`);
  await page.click('#connect');
  await waitForState(page, 'connected');
  const id = await waitForWelcome(page);
  assert.equal(await page.inputValue('#ws-url'), stack.ws);
  assert.equal(await page.inputValue('#room'), 'pasted');
  assert.equal(await page.inputValue('#token'), token);
  assert.equal(page.sockets[0].url, `${stack.ws}?room=pasted&token=${token}`);
  assert.equal(await page.evaluate(() => window.localStorage.getItem('chat.websocketUrl')), stack.ws);
  await waitForLine(page, new RegExp(`^Welcome to #pasted! You are Grace \\(${escapeRegExp(id)}\\)\\.$`));
  assert.equal(await assertTokenHidden(page, token), 0);
  await assertClean(page);
});

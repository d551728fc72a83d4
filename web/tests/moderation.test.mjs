// Browser tests of rooms that belong to someone: members-only rooms (the
// token's rooms claim, `--members-only-rooms`), and moderators (the roles
// claim) removing, banning and deleting from the page, against a local
// stack with sign-in on. Tokens are signed here (HS256); other people are
// WebSocket clients (`ws`).
//
// Run with web/tests/run.sh, or `npm test` in web/tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  TEST_TIMEOUT, assertClean, browserTests, chatClient as outsideClient, connect, escapeRegExp, logLines, openPage,
  send, waitForLine, waitForState, waitForText,
} from './pages.mjs';
import { artifacts, now, signHs256 } from './stack.mjs';

const SECRET = 'web-tests-secret, of 32 bytes ok.';
let stack;
const session = browserTests((shared) => {
  stack = shared;
}, { stackArgs: ['--auth-jwt-secret', SECRET, '--members-only-rooms', 'team-*'] });
const newContext = (options) => session.newContext(options);

/** A token for `sub` named `name`, valid for ten minutes, with `extra` claims. */
function token(sub, name, extra = {}) {
  return signHs256({ sub, name, iat: now(), exp: now() + 600, ...extra }, SECRET);
}

const moderatorToken = () => token('mod', 'Mo', { roles: ['moderator'], rooms: ['team-*'] });
const memberToken = (sub, name) => token(sub, name, { rooms: ['team-*'] });

/** A WebSocket client in this process (closed after each test). */
const chatClient = (query) => outsideClient(stack.ws, query);

/** A page signed in with `signedIn`, connected to `room`; its connection id. */
async function signedInPage(room, signedIn) {
  const page = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await page.fill('#token', signedIn);
  const id = await connect(page);
  return { page, id };
}

const onlineEntry = (id) => `#online-list > li[data-connection-id="${id}"]`;

async function waitForConnectError(page, pattern) {
  await page.waitForFunction(
    ([source, flags]) => new RegExp(source, flags).test(document.getElementById('connect-error').textContent),
    [pattern.source, pattern.flags],
    { polling: 50 },
  );
}

/** The log line of the message `text` (its `li`), as a locator. */
const line = (page, text) => page.locator('#log li.msg', { has: page.locator('.text', { hasText: text }) });

// ----------------------------------------------------------------- tests

test('moderation: a moderator removes and bans from the online list, and the person sees why', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'team-a';
  const mod = await signedInPage(room, moderatorToken());
  assert.equal(await mod.page.getAttribute('#app', 'data-moderator'), 'true');
  const alice = await signedInPage(room, memberToken('alice', 'Alice'));
  const bob = await signedInPage(room, memberToken('bob', 'Bob'));
  const bobId = bob.id;

  // The moderator sees Remove and Ban beside everyone else, not beside
  // themselves; a member sees none.
  await mod.page.waitForSelector(`${onlineEntry(bobId)} button.remove-member`);
  await mod.page.waitForSelector(`${onlineEntry(alice.id)} button.ban-member`);
  assert.equal(await mod.page.locator(`${onlineEntry(mod.id)} button`).count(), 0);
  await alice.page.waitForSelector(onlineEntry(bobId));
  assert.equal(await alice.page.locator('#online-list button').count(), 0);
  assert.equal(await alice.page.getAttribute('#app', 'data-moderator'), 'false');

  // Remove Bob, with a reason: he learns why before he is closed, the room
  // hears who was removed and why, the moderator gets the answer.
  await mod.page.click(`${onlineEntry(bobId)} button.remove-member`);
  assert.match(await mod.page.textContent('#moderation-what'), /^Remove Bob \(.+\) from #team-a/);
  assert.equal(await mod.page.isVisible('#moderation-minutes'), false);
  await mod.page.fill('#moderation-reason', 'flooding');
  await mod.page.click('#moderation-confirm');
  await waitForConnectError(bob.page, /^A moderator removed you from #team-a\. Reason: flooding$/);
  await waitForState(bob.page, 'disconnected');
  assert.equal(await bob.page.getAttribute('#app', 'data-removed'), 'removed');
  assert.match(await bob.page.textContent('#status-line'), /removed by a moderator/);
  await waitForLine(mod.page, /^Removed Bob from team-a\.$/);
  await waitForLine(alice.page, new RegExp(`^Bob \\(${escapeRegExp(bobId)}\\) was removed by a moderator: flooding$`));
  await alice.page.waitForSelector(onlineEntry(bobId), { state: 'detached' });

  // Ban Alice (a page) for 10 minutes: she is told why and until when, the
  // page stops reconnecting, and comes back refused, saying why.
  await mod.page.click(`${onlineEntry(alice.id)} button.ban-member`);
  assert.equal(await mod.page.isVisible('#moderation-minutes'), true);
  await mod.page.fill('#moderation-minutes', '10');
  await mod.page.fill('#moderation-reason', 'spam');
  await mod.page.click('#moderation-confirm');
  await waitForConnectError(alice.page, /^A moderator banned you from #team-a until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\. Reason: spam$/);
  await waitForState(alice.page, 'disconnected');
  assert.equal(await alice.page.getAttribute('#app', 'data-removed'), 'banned');
  const sockets = alice.page.sockets.length;
  await alice.page.waitForTimeout(2500);
  assert.equal(alice.page.sockets.length, sockets, 'a removed page does not reconnect by itself');
  await waitForLine(mod.page, new RegExp(`^Alice \\(${escapeRegExp(alice.id)}\\) was banned until .+ by a moderator: spam$`));
  await alice.page.screenshot({ path: path.join(artifacts, 'moderation-banned.png') });

  await alice.page.click('#connect');
  await waitForConnectError(alice.page, /^A moderator banned you from #team-a until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\. Reason: spam$/);
  await assert.rejects(chatClient({ room, token: memberToken('alice', 'Alice') }), /HTTP 403/);
  await alice.page.click('#disconnect');
  // Removed, not banned: Bob may come back.
  await connect(bob.page);
  for (const page of [mod.page, alice.page, bob.page]) await assertClean(page);
});

test('moderation: deleted messages show as deleted, live and in history already loaded; members delete their own', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'team-b';
  const alice = await signedInPage(room, memberToken('alice2', 'Alice'));
  await send(alice.page, 'oops, wrong room');
  await send(alice.page, 'buy cheap watches');
  await waitForText(alice.page, 'buy cheap watches');
  const mod = await signedInPage(room, moderatorToken());
  await waitForText(mod.page, 'buy cheap watches');

  // Delete buttons: on her own lines for Alice, on every line for the
  // moderator (the history lines included).
  await line(alice.page, 'oops, wrong room').locator('button.delete-message').waitFor();
  assert.equal(await line(mod.page, 'oops, wrong room').locator('button.delete-message').count(), 1);
  const carol = await signedInPage(room, memberToken('carol', 'Carol'));
  await waitForText(carol.page, 'buy cheap watches');
  assert.equal(await carol.page.locator('#log button.delete-message').count(), 0, 'nothing of hers to delete');

  // Alice deletes her own: everyone sees it deleted by its author.
  await line(alice.page, 'oops, wrong room').locator('button.delete-message').click();
  for (const page of [alice.page, mod.page, carol.page]) {
    await waitForText(page, 'Message deleted by its author');
  }
  // The moderator deletes the spam: Carol's history line changes in place.
  await line(mod.page, 'buy cheap watches').locator('button.delete-message').click();
  await waitForText(carol.page, 'Message deleted by a moderator');
  const lines = await logLines(carol.page);
  assert.ok(!lines.some((entry) => /watches|wrong room/.test(entry.text)), JSON.stringify(lines));
  assert.equal(await carol.page.locator('#log li.msg.deleted').count(), 2);
  await carol.page.screenshot({ path: path.join(artifacts, 'moderation-deleted.png') });

  // A page that joins later reads the tombstones from history, no text.
  const dave = await signedInPage(room, memberToken('dave', 'Dave'));
  await waitForText(dave.page, 'Message deleted by a moderator');
  await waitForText(dave.page, 'Message deleted by its author');
  assert.ok(!(await logLines(dave.page)).some((entry) => /watches|wrong room/.test(entry.text)));
  for (const page of [alice.page, mod.page, carol.page, dave.page]) await assertClean(page);
});

test('members-only: a room the token does not name is refused, and the page says so', { timeout: TEST_TIMEOUT }, async () => {
  const outsider = token('otto', 'Otto', { rooms: ['lobby'] });
  const page = await openPage(await newContext(), `${stack.page}?room=team-x`);
  await page.fill('#token', outsider);
  await page.click('#connect');
  await waitForConnectError(page, /./);
  assert.equal(
    await page.textContent('#connect-error'),
    '#team-x is members-only, and your sign-in does not make you a member (it names lobby). '
      + 'Choose another room, or ask for a token that names this one.',
  );
  await assert.rejects(chatClient({ room: 'team-x', token: outsider }), /HTTP 403/);
  // Rooms no pattern guards are open to every signed-in user.
  await page.click('#disconnect');
  await page.fill('#room', 'lobby');
  await connect(page);
  await assertClean(page);
});

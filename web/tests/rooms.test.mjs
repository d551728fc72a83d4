// Browser tests of rooms, display names and history in the web client:
// headless Debian Chromium, driven by playwright-core, against the local
// stack started here, with other people played by WebSocket clients (the
// `ws` package) in this process. Each test has rooms of its own.
//
// Run with web/tests/run.sh, or `npm test` in web/tests.

import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import {
  HOSTILE, TEST_TIMEOUT, assertClean, browserTests, connect, escapeRegExp, logLines, openPage,
  send, sentActions, statusText, waitForHistory, waitForLine, waitForState, waitForText, waitForWelcome,
  waitUntil,
} from './pages.mjs';
import { artifacts, freePort } from './stack.mjs';

let stack;
// The history test writes 130 messages from one connection at once, faster
// than the message rate limit (docs/protocol.md) allows, so it is off here.
const session = browserTests((shared) => {
  stack = shared;
}, { stackArgs: ['--message-rate-per-second', '0'] });
const newContext = (options) => session.newContext(options);

// ------------------------------------------------- people outside the browser

const clients = new Set();
afterEach(() => {
  for (const client of clients) client.ws.close();
  clients.clear();
});

/** A WebSocket client in this process, as wscat would be: `?room=` and `?name=` as given. */
function chatClient(query) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${stack.ws}?${new URLSearchParams(query)}`);
    const frames = [];
    const waiters = new Set();
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      frames.push(frame);
      for (const waiter of waiters) {
        if (waiter.wanted(frame)) {
          waiters.delete(waiter);
          clearTimeout(waiter.timer);
          waiter.resolve(frame);
        }
      }
    });
    const next = (wanted, what, timeout = 10_000) => new Promise((found, fail) => {
      const waiter = { wanted, resolve: found };
      waiter.timer = setTimeout(() => {
        waiters.delete(waiter);
        fail(new Error(`no ${what} in ${timeout} ms`));
      }, timeout);
      waiters.add(waiter);
    });
    const client = {
      ws,
      frames,
      next,
      /** Sends a chat message and resolves with its echo (texts are unique in a test). */
      say(text) {
        const echo = next((f) => f.type === 'message' && f.text === text, `echo of ${text}`);
        ws.send(JSON.stringify({ action: 'sendmessage', message: text }));
        return echo;
      },
    };
    ws.once('open', () => {
      clients.add(client);
      resolve(client);
    });
    ws.once('unexpected-response', (_, response) => reject(new Error(`handshake refused: HTTP ${response.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The order of the room's history index: time, then message id. */
function inHistoryOrder(echoes) {
  return [...echoes].sort((a, b) => (`${a.timestamp}#${a.message_id}` < `${b.timestamp}#${b.message_id}` ? -1 : 1));
}

function managementApi(method, id) {
  return new Promise((resolve, reject) => {
    const request = http.request(`${stack.page}dev/@connections/${encodeURIComponent(id)}`, { method }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('error', reject);
    request.end();
  });
}

const texts = (lines) => lines.filter((l) => l.kind === 'history' || l.kind === 'live').map((l) => l.text);

function assertUniqueIds(lines) {
  const ids = lines.filter((l) => l.id).map((l) => l.id);
  assert.equal(new Set(ids).size, ids.length, `no message shown twice: ${JSON.stringify(texts(lines))}`);
}

const markerOf = (lines) => lines.filter((l) => l.kind === 'marker').at(-1);

// ----------------------------------------------------------------- tests

test('rooms: two pages in different rooms never see each other; changing the room reconnects there', { timeout: TEST_TIMEOUT }, async () => {
  const red = await openPage(await newContext(), `${stack.page}?room=red`);
  const blue = await openPage(await newContext(), `${stack.page}?room=blue`);
  assert.equal(await red.inputValue('#room'), 'red');
  assert.equal(await blue.inputValue('#room'), 'blue');
  await connect(red);
  await connect(blue);
  assert.equal(red.sockets[0].url, `${stack.ws}?room=red`);
  assert.equal(blue.sockets[0].url, `${stack.ws}?room=blue`);
  assert.equal(await red.textContent('#room-now'), '#red');
  assert.equal(await red.title(), '#red · Serverless chat');

  // Someone else joins red: red hears of it, blue does not.
  const other = await chatClient({ room: 'red', name: 'Rita' });
  await waitForLine(red, /^Rita \(.+\) joined\.$/);
  await send(red, 'only in red');
  await send(blue, 'only in blue');
  await other.say('Rita, in red');
  await waitForLine(red, /Rita, in red/);
  await waitForLine(blue, /only in blue/);
  await red.waitForTimeout(300); // time for anything that would cross

  assert.deepEqual(texts(await logLines(red)), ['only in red', 'Rita, in red']);
  assert.deepEqual(texts(await logLines(blue)), ['only in blue']);
  assert.doesNotMatch(await blue.textContent('#log'), /Rita|#red|only in red/);
  for (const frame of blue.sockets.flatMap((s) => s.received).map((p) => JSON.parse(p))) {
    if ('room' in frame) assert.equal(frame.room, 'blue', `blue got ${JSON.stringify(frame)}`);
  }

  // Typing another room (Enter) moves the page there: a new socket, a new
  // log, the address links to it, and it is remembered.
  const inRed = await red.getAttribute('#app', 'data-connection-id');
  await red.fill('#room', 'green');
  await red.press('#room', 'Enter');
  await waitUntil(() => red.sockets.length === 2, 5_000, 'a socket in green');
  await waitForWelcome(red, inRed);
  await waitForHistory(red);
  assert.equal(red.sockets[1].url, `${stack.ws}?room=green`);
  assert.ok(red.sockets[0].closedAt > 0, 'the socket in red is closed');
  assert.equal(new URL(red.url()).searchParams.get('room'), 'green');
  assert.equal(await red.textContent('#room-now'), '#green');
  const green = await logLines(red);
  assert.deepEqual(texts(green), [], 'nothing from red');
  assert.deepEqual(markerOf(green), { kind: 'marker', marker: 'empty', text: 'No earlier messages in #green' });
  await other.say('Rita, still in red');
  await red.waitForTimeout(300);
  assert.deepEqual(texts(await logLines(red)), []);

  // A page opened without ?room= goes to the remembered room and says so in its address.
  const again = await red.context().newPage();
  await again.goto(stack.page);
  await again.waitForSelector('#app[data-ready="true"]');
  assert.equal(await again.inputValue('#room'), 'green');
  assert.equal(new URL(again.url()).searchParams.get('room'), 'green');
  await assertClean(red);
  await assertClean(blue);
});

test('a ?room= link opens that room, with what was said there before', { timeout: TEST_TIMEOUT }, async () => {
  const writer = await chatClient({ room: 'books' });
  await writer.say('Has anyone read Middlemarch?');
  const page = await openPage(await newContext(), `${stack.page}?room=books&heartbeat=30`);
  assert.equal(await page.inputValue('#room'), 'books');
  assert.equal(await page.title(), '#books · Serverless chat');
  await connect(page);
  assert.equal(page.sockets[0].url, `${stack.ws}?room=books`);
  const lines = await logLines(page);
  assert.deepEqual(texts(lines), ['Has anyone read Middlemarch?']);
  assert.equal(lines[0].kind, 'history');
  // The address keeps the other parameters.
  const address = new URL(page.url());
  assert.equal(address.searchParams.get('room'), 'books');
  assert.equal(address.searchParams.get('heartbeat'), '30');
  await assertClean(page);
});

test('history: a late joiner sees earlier messages above a marker and scrolls back to the beginning, in order, each once', { timeout: 90_000 }, async () => {
  const room = 'long-story';
  const writer = await chatClient({ room, name: 'Scheherazade' });
  const echoes = [];
  for (let i = 1; i <= 130; i += 1) echoes.push(await writer.say(`night ${i}`));
  const expected = inHistoryOrder(echoes).map((e) => e.text);

  const page = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await connect(page);
  let lines = await logLines(page);
  // The latest page (the server's default 50) above the marker.
  const markerAt = lines.findIndex((l) => l.kind === 'marker');
  assert.deepEqual(lines.slice(0, markerAt).map((l) => l.text), expected.slice(80));
  assert.ok(lines.slice(0, markerAt).every((l) => l.kind === 'history' && l.who === 'Scheherazade'));
  assert.deepEqual(lines[markerAt], { kind: 'marker', marker: 'joined', text: 'New since you joined' });
  assert.match(lines[markerAt + 1].text, new RegExp(`^Connected to #${room} `));
  assert.equal(await page.getAttribute('#log-top', 'data-state'), 'more');

  // Scrolled to the top: the next older page, with the reader's place kept.
  const place = () => page.$eval('#log-scroller', (scroller) => {
    const first = [...document.querySelectorAll('#log li.msg')].find((li) => li.querySelector('.text').textContent === 'night 81');
    return first.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
  });
  // Measured in the same task as the scroll: before the page can arrive.
  const before81 = await page.$eval('#log-scroller', (scroller) => {
    scroller.scrollTop = 0;
    const first = [...document.querySelectorAll('#log li.msg')].find((li) => li.querySelector('.text').textContent === 'night 81');
    return first.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
  });
  await page.waitForFunction(() => document.querySelectorAll('#log li.msg').length === 100, null, { polling: 50 });
  await waitForHistory(page);
  const after81 = await place();
  assert.ok(Math.abs(after81 - before81) < 3, `night 81 stays where it was (${before81} px, then ${after81} px)`);
  assert.ok(await page.$eval('#log-scroller', (el) => el.scrollTop) > 0);

  await page.$eval('#log-scroller', (el) => { el.scrollTop = 0; });
  await page.waitForFunction(() => document.querySelectorAll('#log li.msg').length === 130, null, { polling: 50 });
  await waitForHistory(page);
  assert.equal(await page.getAttribute('#log-top', 'data-state'), 'beginning');
  assert.equal(await page.innerText('#log-top'), `Beginning of #${room}`);

  // At the beginning nothing more is asked for.
  await page.$eval('#log-scroller', (el) => { el.scrollTop = 0; });
  await page.waitForTimeout(300);
  const asked = sentActions(page, 'history').map((p) => JSON.parse(p));
  const pages = page.sockets[0].received.map((p) => JSON.parse(p)).filter((f) => f.type === 'history');
  assert.equal(asked.length, 3);
  assert.equal(pages.length, 3);
  assert.deepEqual(asked, [
    { action: 'history', limit: 50 },
    { action: 'history', limit: 50, before: pages[0].cursor },
    { action: 'history', limit: 50, before: pages[1].cursor },
  ]);
  assert.equal(pages[2].cursor, null);

  // Something new arrives at the end.
  await writer.say('night 131');
  await waitForLine(page, /night 131/);
  lines = await logLines(page);
  assert.deepEqual(texts(lines), [...expected, 'night 131']);
  assertUniqueIds(lines);
  assert.equal(lines.filter((l) => l.kind === 'live').length, 1);
  assert.deepEqual(lines.find((l) => l.kind === 'marker').marker, 'joined');
  await assertClean(page);
});

test('history: a live message that arrives while the history loads is shown once; a reconnect shows what was missed', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'overlap';
  const writer = await chatClient({ room });
  for (const text of ['one', 'two', 'three']) await writer.say(text);

  const context = await newContext();
  // Holds the page's history requests until the test lets them go.
  await context.addInitScript(() => {
    const send = WebSocket.prototype.send;
    window.__held = [];
    window.__hold = true;
    WebSocket.prototype.send = function (data) {
      if (window.__hold && String(data).includes('"action":"history"')) {
        window.__held.push([this, data]);
        return undefined;
      }
      return send.call(this, data);
    };
    window.__release = () => {
      window.__hold = false;
      for (const [ws, data] of window.__held.splice(0)) send.call(ws, data);
    };
  });
  const page = await openPage(context, `${stack.page}?room=${room}`);
  await page.click('#connect');
  await waitForState(page, 'connected');
  const firstId = await waitForWelcome(page);
  await page.waitForFunction(() => window.__held.length === 1, null, { polling: 50 });

  // Said while the page's history request is on its way: live, and in the page.
  await writer.say('four, while the history loads');
  await waitForLine(page, /four, while the history loads/);
  let lines = await logLines(page);
  assert.equal(markerOf(lines).marker, 'loading');
  assert.deepEqual(texts(lines), ['four, while the history loads']);

  await page.evaluate(() => window.__release());
  await waitForHistory(page);
  lines = await logLines(page);
  const history = page.sockets[0].received.map((p) => JSON.parse(p)).find((f) => f.type === 'history');
  assert.ok(history.messages.some((m) => m.text === 'four, while the history loads'), 'the page has it too');
  assert.deepEqual(texts(lines), ['one', 'two', 'three', 'four, while the history loads']);
  assert.deepEqual(lines.map((l) => l.kind).slice(0, 4), ['history', 'history', 'history', 'marker']);
  assert.equal(lines.find((l) => l.text === 'four, while the history loads').kind, 'live');
  assertUniqueIds(lines);

  // The server drops the connection; something is said before the page is
  // back: the reconnect shows it, above a marker, once.
  assert.equal(await managementApi('DELETE', firstId), 204);
  await page.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1000', null, { polling: 20 });
  await writer.say('five, while you were away');
  await waitForState(page, 'connected', 5_000);
  const secondId = await waitForWelcome(page, firstId);
  await waitForHistory(page);
  lines = await logLines(page);
  assert.deepEqual(texts(lines), ['one', 'two', 'three', 'four, while the history loads', 'five, while you were away']);
  assertUniqueIds(lines);
  const closedAt = lines.findIndex((l) => /^Connection closed \(1000/.test(l.text));
  const fiveAt = lines.findIndex((l) => l.text === 'five, while you were away');
  const markerAt = lines.findLastIndex((l) => l.kind === 'marker');
  assert.ok(closedAt < fiveAt && fiveAt < markerAt, `missed message between the close and the marker: ${JSON.stringify(lines)}`);
  assert.equal(lines[fiveAt].kind, 'history');
  assert.deepEqual(lines[markerAt], { kind: 'marker', marker: 'reconnected', text: 'New since you reconnected' });

  // Dropped again with nothing said meanwhile: nothing shown twice.
  assert.equal(await managementApi('DELETE', secondId), 204);
  await waitForWelcome(page, secondId);
  await waitForHistory(page);
  lines = await logLines(page);
  assert.equal(texts(lines).length, 5);
  assertUniqueIds(lines);
  assert.equal(markerOf(lines).marker, 'nothing-missed');
  await assertClean(page);
});

test('names: shown on messages and presence, never trusted as identity; a hostile name stays text', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'names';
  const grace = await chatClient({ room, name: 'Grace' });
  const graceEcho = await grace.say('I was here first');

  const ada = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await ada.fill('#name', 'Ada');
  const adaId = await connect(ada);
  assert.equal(ada.sockets[0].url, `${stack.ws}?room=${room}&name=Ada`);
  await waitForLine(ada, new RegExp(`^Welcome to #${room}! You are Ada \\(${escapeRegExp(adaId)}\\)\\.$`));

  const mallory = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await mallory.fill('#name', HOSTILE);
  const malloryId = await connect(mallory);
  await waitForLine(ada, new RegExp(`^${escapeRegExp(HOSTILE)} \\(${escapeRegExp(malloryId)}\\) joined\\.$`));

  // Someone else may pick the same name: still someone else.
  const otherAda = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await otherAda.fill('#name', '  Ada  ');
  const otherAdaId = await connect(otherAda);
  assert.equal(otherAda.sockets[0].url, `${stack.ws}?room=${room}&name=Ada`, 'the name is sent trimmed');

  await send(ada, 'Hello, I am Ada');
  await waitForText(ada, 'Hello, I am Ada');
  await send(otherAda, 'So am I');
  await waitForText(ada, 'So am I');
  await send(mallory, 'hi');
  await waitForText(ada, 'hi');
  const lines = (await logLines(ada)).filter((l) => l.kind === 'history' || l.kind === 'live');
  assert.deepEqual(lines.map(({ kind, sender, own, who, senderId, text }) => ({ kind, sender, own, who, senderId, text })), [
    { kind: 'history', sender: graceEcho.connection_id, own: false, who: 'Grace', senderId: graceEcho.connection_id, text: 'I was here first' },
    { kind: 'live', sender: adaId, own: true, who: 'You', senderId: adaId, text: 'Hello, I am Ada' },
    { kind: 'live', sender: otherAdaId, own: false, who: 'Ada', senderId: otherAdaId, text: 'So am I' },
    { kind: 'live', sender: malloryId, own: false, who: HOSTILE, senderId: malloryId, text: 'hi' },
  ]);
  assert.equal(await ada.locator('#log img').count(), 0);
  const whoHtml = await ada.locator('#log li.msg .who').last().innerHTML();
  assert.equal(whoHtml, '&lt;img src=x onerror=alert(1)&gt;');
  assert.equal(await mallory.locator('#log img').count(), 0);

  // A name with spaces inside and letters from other scripts, percent-encoded.
  const zoe = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await zoe.fill('#name', ' Zoë Ω ');
  const zoeId = await connect(zoe);
  assert.equal(zoe.sockets[0].url, `${stack.ws}?room=${room}&name=Zo%C3%AB%20%CE%A9`);
  await waitForLine(ada, new RegExp(`^Zoë Ω \\(${escapeRegExp(zoeId)}\\) joined\\.$`));
  await ada.setViewportSize({ width: 900, height: 900 });
  await ada.screenshot({ path: path.join(artifacts, 'rooms.png') });

  // Changing the name reconnects under it, in the same room, with the log kept.
  await zoe.fill('#name', 'Zoë');
  await zoe.press('#name', 'Enter');
  const zoeAgain = await waitForWelcome(zoe, zoeId);
  await waitForHistory(zoe);
  assert.equal(zoe.sockets[1].url, `${stack.ws}?room=${room}&name=Zo%C3%AB`);
  await waitForLine(ada, new RegExp(`^Zoë \\(${escapeRegExp(zoeAgain)}\\) joined\\.$`));
  assert.equal(texts(await logLines(zoe)).filter((t) => t === 'hi').length, 1);

  // Remembered: a reload keeps the name and the room.
  await ada.reload();
  await ada.waitForSelector('#app[data-ready="true"]');
  assert.equal(await ada.inputValue('#name'), 'Ada');
  assert.equal(await ada.inputValue('#room'), room);
  for (const page of [ada, mallory, otherAda, zoe]) await assertClean(page);
});

/** The online list as shown: each entry's connection id, text and whether it is marked as yours. */
const onlineList = (page) => page.$$eval('#online-list > li', (items) => items.map((li) => ({
  id: li.dataset.connectionId, text: li.textContent, own: li.classList.contains('own'),
})));

/** Waits until the online list holds exactly these connection ids. */
async function waitForOnline(page, ids) {
  await page.waitForFunction((wanted) => {
    const shown = [...document.querySelectorAll('#online-list > li')].map((li) => li.dataset.connectionId).sort();
    return JSON.stringify(shown) === JSON.stringify(wanted);
  }, [...ids].sort(), { polling: 50 });
}

/** The page's `presence` and `welcome` frames, every one, from its sockets. */
const framesOf = (page) => page.sockets.flatMap((s) => s.received).flatMap((payload) => {
  try {
    return [JSON.parse(payload)];
  } catch {
    return [];
  }
});

test('online list: the welcome lists who is here, presence keeps it current, repeats change nothing, names stay text', { timeout: TEST_TIMEOUT }, async () => {
  const room = 'online';
  // Ada's page goes through a route that, once asked, plays every presence
  // frame it has had again: at-least-once delivery, replayed late.
  const ada = await openPage(await newContext(), `${stack.page}?room=${room}`);
  const presenceToAda = [];
  let toAda = null;
  await ada.routeWebSocket(/.*/, (socket) => {
    const server = socket.connectToServer();
    toAda = socket;
    server.onMessage((message) => {
      socket.send(message);
      if (String(message).includes('"type":"presence"')) presenceToAda.push(message);
    });
  });
  await ada.fill('#name', 'Ada');
  const adaId = await connect(ada);
  await waitForOnline(ada, [adaId]);
  assert.deepEqual(await onlineList(ada), [{ id: adaId, text: 'Ada (you)', own: true }]);

  const mallory = await openPage(await newContext(), `${stack.page}?room=${room}`);
  await mallory.fill('#name', HOSTILE);
  const malloryId = await connect(mallory);

  // The third, without a name, knows both from its welcome alone.
  const third = await openPage(await newContext(), `${stack.page}?room=${room}`);
  const thirdId = await connect(third);
  const welcome = framesOf(third).find((f) => f.type === 'welcome');
  assert.equal(welcome.online_count, 3);
  assert.deepEqual(welcome.online.map((m) => m.connection_id).sort(), [adaId, malloryId, thirdId].sort());
  assert.ok(!framesOf(third).some((f) => f.type === 'presence'), 'no presence frame needed to know who is here');
  const shown = await onlineList(third);
  assert.deepEqual(shown[0], { id: thirdId, text: `${thirdId} (you)`, own: true }, 'yourself first, by connection id without a name');
  assert.deepEqual(shown.slice(1).sort((a, b) => a.id.localeCompare(b.id)), [
    { id: adaId, text: 'Ada', own: false },
    { id: malloryId, text: HOSTILE, own: false },
  ].sort((a, b) => a.id.localeCompare(b.id)));
  assert.equal(await third.textContent('#online-heading'), 'Online (3): ');
  assert.equal(await third.textContent('#online-more'), '');
  assert.equal(await third.getAttribute('#online', 'data-count'), '3');
  assert.doesNotMatch(await third.textContent('#log'), /joined\./, 'people already here are listed, not announced');
  // A hostile name is text in the list: no element, nothing ran.
  assert.equal(await third.locator('#online img').count(), 0);
  assert.equal(await third.locator(`#online-list > li[data-connection-id="${malloryId}"] bdi`).innerHTML(), '&lt;img src=x onerror=alert(1)&gt;');

  // The earlier ones learn of the later ones from presence frames.
  await waitForOnline(ada, [adaId, malloryId, thirdId]);
  await waitForOnline(mallory, [adaId, malloryId, thirdId]);
  await waitForLine(ada, new RegExp(`^${escapeRegExp(HOSTILE)} \\(${escapeRegExp(malloryId)}\\) joined\\.$`));
  await waitForLine(ada, new RegExp(`^${escapeRegExp(thirdId)} joined\\.$`));
  assert.equal((await mallory.textContent('#online-heading')), 'Online (3): ');
  assert.equal(await ada.locator('#online img').count(), 0);

  // Mallory leaves: every remaining list drops her, each says so once.
  await mallory.close();
  for (const page of [ada, third]) {
    await waitForOnline(page, [adaId, thirdId]);
    await waitForLine(page, new RegExp(`^${escapeRegExp(HOSTILE)} \\(${escapeRegExp(malloryId)}\\) left after \\d+(\\.\\d)? s\\.$`));
    assert.equal(await page.textContent('#online-heading'), 'Online (2): ');
  }
  const presence = framesOf(third).filter((f) => f.type === 'presence');
  assert.ok(presence.some((f) => f.left.some((d) => d.connection_id === malloryId && d.name === HOSTILE)));
  assert.ok(!framesOf(ada).some((f) => f.type === 'joined' || f.type === 'left'), 'no per-person frames');

  // Every presence frame Ada had, delivered again (her join after her
  // leave among them): the list and the log stay as they were.
  assert.ok(presenceToAda.length >= 2, `presence frames to Ada: ${presenceToAda.length}`);
  const linesBefore = (await logLines(ada)).map((l) => l.text);
  for (const message of presenceToAda) toAda.send(message);
  await send(ada, 'after the replay');
  await waitForText(ada, 'after the replay');
  await waitForOnline(ada, [adaId, thirdId]);
  assert.deepEqual((await logLines(ada)).map((l) => l.text), [...linesBefore, 'after the replay']);
  assert.equal(await ada.getAttribute('#online', 'data-count'), '2');
  await ada.screenshot({ path: path.join(artifacts, 'online.png') });

  // Disconnected: no list (it would be stale); it comes back with the next welcome.
  await third.click('#disconnect');
  await waitForOnline(ada, [adaId]);
  assert.equal(await third.isHidden('#online'), true);
  for (const page of [ada, third]) await assertClean(page);
});

test('room and name are checked before connecting, as the server checks them, and say why', { timeout: TEST_TIMEOUT }, async () => {
  // A bad room typed in the page's address.
  const page = await openPage(await newContext(), `${stack.page}?room=bad!room`);
  assert.equal(await page.inputValue('#room'), 'bad!room');
  assert.equal(await page.textContent('#room-error'), 'Room names use only letters A–Z and a–z, digits, - and _ (not “!”).');
  assert.equal(await page.getAttribute('#room', 'aria-invalid'), 'true');
  await page.click('#connect');
  assert.equal(await statusText(page), 'Error: check the room name');
  assert.equal(page.sockets.length, 0, 'nothing sent to the server');
  assert.equal(new URL(page.url()).searchParams.get('room'), 'bad!room', 'the address is left as typed');

  const cases = [
    ['#room', 'x'.repeat(65), '#room-error', 'Room names are 1 to 64 characters; this one has 65.'],
    ['#room', 'café', '#room-error', 'Room names use only letters A–Z and a–z, digits, - and _ (not “é”).'],
    ['#room', 'two words', '#room-error', 'Room names use only letters A–Z and a–z, digits, - and _ (not U+0020).'],
    ['#name', 'n'.repeat(33), '#name-error', 'Names are 1 to 32 characters once trimmed; this one has 33.'],
    ['#name', 'bell\u0007', '#name-error', 'Names cannot contain control characters (U+0007).'],
    ['#name', 'tab\there', '#name-error', 'Names cannot contain control characters (U+0009).'],
    ['#name', '\u202Eevil', '#name-error', 'Names cannot contain characters that reorder text (U+202E).'],
  ];
  for (const [field, value, output, why] of cases) {
    await page.fill('#room', 'ok');
    await page.fill('#name', '');
    await page.fill(field, value);
    await page.click('#connect');
    assert.equal(await page.textContent(output), why, `${field} ${JSON.stringify(value)}`);
    assert.equal(await page.getAttribute(field, 'aria-invalid'), 'true');
    assert.equal(page.sockets.length, 0, `nothing sent for ${JSON.stringify(value)}`);
  }

  // Fixed: the message goes as soon as the field is right; an empty room is the lobby.
  await page.fill('#name', 'n'.repeat(32));
  assert.equal(await page.textContent('#name-error'), '');
  await page.fill('#room', '');
  await connect(page);
  assert.equal(page.sockets[0].url, `${stack.ws}?room=lobby&name=${'n'.repeat(32)}`);
  assert.equal(await page.inputValue('#room'), '');
  assert.equal(new URL(page.url()).searchParams.get('room'), 'lobby');

  // While connected, a bad room keeps the page where it is and says why.
  await page.fill('#room', 'no/slashes');
  await page.press('#room', 'Enter');
  assert.match(await page.textContent('#room-error'), /not “\/”/);
  await page.waitForTimeout(300);
  assert.equal(page.sockets.length, 1);
  assert.equal(await page.getAttribute('#app', 'data-state'), 'connected');
  await assertClean(page);
});

test('a refused connection says so: the server refused, or is not running; check the room and name', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext();
  // Gets past the page's own check, as an older page or a typo in a link could.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(url, ...rest) {
        super(window.__rewrite ? window.__rewrite(String(url)) : url, ...rest);
      }
    };
  });
  const page = await openPage(context, `${stack.page}?room=refusals`);
  await page.evaluate(() => {
    window.__rewrite = (url) => url.replace('name=Eve', 'name=Eve%07');
  });
  await page.fill('#name', 'Eve');
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('connect-error').textContent !== '', null, { polling: 50 });
  assert.ok(page.sockets[0].url.endsWith('?room=refusals&name=Eve%07'));
  assert.equal(
    await page.textContent('#connect-error'),
    'The server refused the connection to #refusals as “Eve”, or could not be reached (the browser is not told which, or why). '
      + `Check the room and the name, and that the server is running at ${stack.ws}.`,
  );
  assert.equal(await page.getAttribute('#app', 'data-last-close'), '1006');
  assert.match(await statusText(page), /^Error: connection refused or server unreachable — reconnecting in \d s…$/);
  await waitForLine(page, /^Could not connect \(1006\): refused or unreachable\. Reconnecting in 1 s…$/);
  // The server did refuse it (the page cannot know this; the test can).
  await assert.rejects(chatClient({ room: 'refusals', name: 'Eve\u0007' }), /HTTP 400/);
  await page.screenshot({ path: path.join(artifacts, 'refused.png') });

  // Fixed (here: the page no longer tampered with): the next attempt connects and the message goes.
  await page.evaluate(() => {
    window.__rewrite = null;
  });
  await waitForState(page, 'connected', 10_000);
  await waitForWelcome(page);
  assert.equal(await page.textContent('#connect-error'), '');

  // Nothing listening at all: the same words, for the same reason.
  await page.click('#disconnect');
  await waitForState(page, 'disconnected');
  const nowhere = `ws://127.0.0.1:${await freePort()}/dev`;
  await page.fill('#ws-url', nowhere);
  await page.fill('#name', '');
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('connect-error').textContent !== '', null, { polling: 50 });
  assert.equal(
    await page.textContent('#connect-error'),
    'The server refused the connection to #refusals, or could not be reached (the browser is not told which, or why). '
      + `Check the room and the name, and that the server is running at ${nowhere}. `
      + 'If this chat requires sign-in, paste your token into the Token field.',
  );
  await page.click('#disconnect');
  await waitForState(page, 'disconnected');
  assert.equal(await page.textContent('#connect-error'), '');
  await assertClean(page);
});

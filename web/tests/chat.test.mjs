// Browser tests of the web client: headless Debian Chromium, driven by
// playwright-core, against the local stack (`chat-local`) started here.
//
//   CHAT_LOCAL_BIN   the chat-local binary (default <repo>/target/debug/chat-local)
//   CHROMIUM_BIN     the browser (default /usr/bin/chromium)
//
// Run with web/tests/run.sh, or `npm test` in web/tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  HOSTILE, TEST_TIMEOUT, assertClean, browserTests, connect, escapeRegExp, messages, openPage,
  send, sentActions, state, statusText, waitForLine, waitForMessages, waitForState, waitForWelcome,
  waitUntil,
} from './pages.mjs';
import { artifacts, freePort, startStack, webDir } from './stack.mjs';

// ------------------------------------------------------------- the stack

/** A static file server for web/ without /config.json, like S3 or GitHub Pages. */
async function startStaticHost() {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };
  const files = new Set(['index.html', 'chat-rules.js', 'chat-client.js', 'app.js', 'style.css']);
  const server = http.createServer((request, response) => {
    const name = new URL(request.url, 'http://x').pathname.slice(1) || 'index.html';
    if (!files.has(name)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': types[path.extname(name)] });
    response.end(fs.readFileSync(path.join(webDir, name)));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// ----------------------------------------------------------- the browser

let stack; // shared by the tests that need no special server settings
const session = browserTests((shared) => {
  stack = shared;
});
const newContext = (options) => session.newContext(options);

// ----------------------------------------------------------------- tests

test('two pages chat: both see both messages in order, own ones marked, presence shown, hostile text stays text', { timeout: TEST_TIMEOUT }, async () => {
  const alice = await openPage(await newContext(), stack.page);
  const bob = await openPage(await newContext(), stack.page);

  // Served by the stack: the field holds the stack's own URL, the limit is the stack's.
  assert.equal(await alice.inputValue('#ws-url'), stack.ws);
  assert.equal(await alice.textContent('#counter'), '0 / 8192 bytes');
  assert.equal(await state(alice), 'disconnected');
  assert.equal(await statusText(alice), 'Disconnected');

  const aliceId = await connect(alice);
  const bobId = await connect(bob);
  assert.notEqual(aliceId, bobId);
  assert.equal(await alice.textContent('#me'), aliceId);
  await waitForLine(alice, new RegExp(`^${escapeRegExp(bobId)} joined\\.$`));
  // Bob's join came in a `presence` frame (per-person `joined` frames are gone);
  // both are in Alice's online list, hers marked, Bob's by connection id.
  const framesTo = (page) => page.sockets.flatMap((s) => s.received).flatMap((p) => {
    try {
      return [JSON.parse(p)];
    } catch {
      return [];
    }
  });
  assert.ok(framesTo(alice).some((f) => f.type === 'presence' && f.joined.some((m) => m.connection_id === bobId)));
  const onlineOf = (page) => page.$$eval('#online-list > li', (items) => items.map((li) => li.textContent));
  await alice.waitForFunction((id) => document.querySelector(`#online-list > li[data-connection-id="${id}"]`) !== null, bobId);
  assert.ok((await onlineOf(alice)).includes(`${aliceId} (you)`));
  assert.ok((await onlineOf(alice)).includes(bobId));

  await send(alice, 'Hello from Alice');
  await waitForMessages(bob, 1);
  await send(bob, 'Hi Alice, Bob here');
  await waitForMessages(alice, 2);
  await send(alice, HOSTILE);
  await waitForMessages(alice, 3);
  await waitForMessages(bob, 3);

  assert.deepEqual(await messages(alice), [
    { sender: aliceId, own: true, who: 'You', text: 'Hello from Alice' },
    { sender: bobId, own: false, who: bobId, text: 'Hi Alice, Bob here' },
    { sender: aliceId, own: true, who: 'You', text: HOSTILE },
  ]);
  assert.deepEqual(await messages(bob), [
    { sender: aliceId, own: false, who: aliceId, text: 'Hello from Alice' },
    { sender: bobId, own: true, who: 'You', text: 'Hi Alice, Bob here' },
    { sender: aliceId, own: false, who: aliceId, text: HOSTILE },
  ]);

  // The hostile message is text: no element was made from it, nothing ran.
  for (const page of [alice, bob]) {
    assert.equal(await page.locator('#log img').count(), 0);
    const html = await page.locator('#log li.msg .text').last().innerHTML();
    assert.equal(html, '&lt;img src=x onerror=alert(1)&gt;');
  }

  // Accessibility basics: every control is labelled, the log and status are live.
  const unlabelled = await alice.$$eval('input, textarea', (controls) => controls
    .filter((c) => c.labels.length === 0 && !c.getAttribute('aria-label'))
    .map((c) => c.id));
  assert.deepEqual(unlabelled, []);
  assert.equal(await alice.getAttribute('#log', 'aria-live'), 'polite');
  assert.equal(await alice.getAttribute('#status', 'aria-live'), 'polite');
  assert.equal(await alice.getAttribute('label[for="message"]', 'for'), 'message');

  await alice.screenshot({ path: path.join(artifacts, 'chat.png') });

  // Phone-sized: nothing overflows sideways, everything is still there.
  await bob.setViewportSize({ width: 375, height: 740 });
  const overflow = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow} px wider than a 375 px screen`);
  for (const id of ['#ws-url', '#connect', '#disconnect', '#room', '#name', '#message', '#send', '#log']) {
    const box = await bob.locator(id).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${id} fits in 375 px`);
  }
  await bob.screenshot({ path: path.join(artifacts, 'chat-phone.png') });
  await assertClean(bob);

  // Bob leaves: Alice sees it, with how long he stayed.
  await bob.close();
  await waitForLine(alice, new RegExp(`^${escapeRegExp(bobId)} left after \\d+(\\.\\d)? s\\.$`));
  await alice.waitForFunction((id) => document.querySelector(`#online-list > li[data-connection-id="${id}"]`) === null, bobId);
  assert.ok(!framesTo(alice).some((f) => f.type === 'joined' || f.type === 'left'), 'no per-person presence frames');
  await assertClean(alice);
});

test('own message is marked even when its echo arrives before the welcome', { timeout: TEST_TIMEOUT }, async () => {
  // A slow stream poller delays `welcome`; the echo comes straight from the handler.
  const slow = await startStack({ pollMs: 3000 });
  try {
    const page = await openPage(await newContext(), slow.page);
    let overtook = false;
    for (let attempt = 0; attempt < 3 && !overtook; attempt += 1) {
      if (attempt > 0) {
        await page.click('#disconnect');
        await waitForState(page, 'disconnected');
      }
      await page.click('#connect');
      await waitForState(page, 'connected');
      const text = `early bird ${attempt}`;
      await send(page, text);
      await page.waitForFunction((t) => [...document.querySelectorAll('#log li.msg .text')].some((el) => el.textContent === t), text, { polling: 20 });
      overtook = (await page.getAttribute('#app', 'data-connection-id')) === '';
      const line = (await messages(page)).find((m) => m.text === text);
      assert.equal(line.own, true, 'marked as own on arrival');
      assert.equal(line.who, 'You');
      if (overtook) {
        const id = await waitForWelcome(page);
        const after = (await messages(page)).find((m) => m.text === text);
        assert.deepEqual(after, { sender: id, own: true, who: 'You', text }, 'still own once the welcome names our id');
      }
    }
    assert.ok(overtook, 'the echo arrived before the welcome at least once');
    await assertClean(page);
  } finally {
    await slow.stop();
  }
});

test('reload reconnects to the remembered URL; after Disconnect, reload stays disconnected', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), stack.page);
  // Not the pre-filled URL: the root path upgrades too.
  const chosen = `ws://127.0.0.1:${stack.port}/`;
  assert.notEqual(chosen, await page.inputValue('#ws-url'));
  const firstId = await connect(page, chosen);

  await page.reload();
  await waitForState(page, 'connected');
  const secondId = await waitForWelcome(page);
  assert.notEqual(secondId, firstId, 'a new connection');
  assert.equal(await page.inputValue('#ws-url'), chosen);
  assert.equal(page.sockets.length, 2);
  assert.equal(page.sockets[1].url, `${chosen}?room=lobby`, 'the URL, in the room');

  await page.click('#disconnect');
  await waitForState(page, 'disconnected');
  assert.equal(await statusText(page), 'Disconnected');
  await page.reload();
  await page.waitForSelector('#app[data-ready="true"]');
  assert.equal(await page.inputValue('#ws-url'), chosen, 'still remembered');
  await page.waitForTimeout(500);
  assert.equal(await state(page), 'disconnected');
  assert.equal(page.sockets.length, 2, 'no socket opened after a deliberate disconnect');
  await assertClean(page);
});

test('connecting while connecting or connected never opens a second socket; a bad URL is an error', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), stack.page);
  const good = await page.inputValue('#ws-url');
  await page.fill('#ws-url', 'http://127.0.0.1/dev');
  await page.click('#connect');
  assert.equal(await state(page), 'error');
  assert.equal(await statusText(page), 'Error: enter a ws:// or wss:// URL');
  assert.equal(page.sockets.length, 0);
  await page.fill('#ws-url', good);

  // Three submits in one go: the second and third arrive while the first socket is CONNECTING.
  await page.evaluate(() => {
    const form = document.getElementById('connect-form');
    form.requestSubmit();
    form.requestSubmit();
    form.requestSubmit();
  });
  await waitForState(page, 'connected');
  await waitForWelcome(page);
  // And again while OPEN, through the keyboard and the form.
  await page.press('#ws-url', 'Enter');
  await page.evaluate(() => document.getElementById('connect-form').requestSubmit());
  assert.equal(await page.isDisabled('#connect'), true);
  await page.waitForTimeout(400);
  assert.equal(page.sockets.length, 1);
  assert.equal(await state(page), 'connected');
  await assertClean(page);
});

test('auto-disconnect closes the socket on time and does not reconnect', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), stack.page);
  assert.equal(await page.isChecked('#auto-disconnect'), false, 'off by default');
  assert.equal(await page.inputValue('#auto-disconnect-secs'), '60', 'default 60 s');
  await page.fill('#auto-disconnect-secs', '2');
  await page.check('#auto-disconnect');
  await connect(page);
  assert.match(await page.textContent('#auto-disconnect-left'), /^in [12] s$/);
  const openedAt = Number(await page.getAttribute('#app', 'data-opened-at'));

  await waitForState(page, 'disconnected', 5_000);
  const socket = page.sockets[0];
  await waitUntil(() => socket.closedAt !== 0, 3_000, 'socket closed');
  const lifetime = socket.closedAt - openedAt;
  assert.ok(lifetime >= 1_900 && lifetime <= 3_000, `closed after ${lifetime} ms, wanted about 2000`);
  assert.match(await statusText(page), /^Disconnected: auto-disconnect after 2 s$/);

  await page.waitForTimeout(1_500); // a reconnect would have started by now
  assert.equal(page.sockets.length, 1, 'no reconnect');
  assert.equal(await state(page), 'disconnected');
  await assertClean(page);
});

test('session counter advances, from the clock, and the connection time is shown in UTC', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), stack.page);
  const before = Date.now();
  await connect(page);
  const shown = await page.textContent('#connected-at');
  assert.match(shown, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  const shownMs = Date.parse(`${shown.slice(0, 10)}T${shown.slice(11, 19)}Z`);
  assert.ok(Math.abs(shownMs - before) < 5_000, `connection time ${shown} is now`);

  assert.match(await page.textContent('#duration'), /^00:00:0[01]$/);
  await page.waitForFunction(() => document.getElementById('duration').textContent === '00:00:02', null, { timeout: 5_000, polling: 50 });

  // Computed from the clock, not by counting ticks: move the clock an hour on.
  await page.evaluate(() => {
    const real = Date.now.bind(Date);
    window.__realNow = real;
    Date.now = () => real() + 3_600_000;
  });
  await page.waitForFunction(() => /^01:00:0\d$/.test(document.getElementById('duration').textContent), null, { timeout: 2_000, polling: 50 });
  await page.evaluate(() => {
    Date.now = window.__realNow;
  });
  await assertClean(page);
});

test('heartbeat keeps an idle connection open; pongs never show in the chat', { timeout: TEST_TIMEOUT }, async () => {
  const idle = await startStack({ args: ['--idle-timeout-secs', '2'] });
  try {
    const beating = await openPage(await newContext(), `${idle.page}?heartbeat=0.5`);
    const quiet = await openPage(await newContext(), idle.page); // the default 300 s heartbeat
    const beatingId = await connect(beating);
    const quietId = await connect(quiet);

    // The quiet page is closed for idleness (1001) and reconnects by itself.
    await quiet.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1001', null, { timeout: 5_000, polling: 50 });
    assert.match(await statusText(quiet), /reconnecting in \d+ s…/);
    await waitForState(quiet, 'connected', 5_000);
    assert.notEqual(await waitForWelcome(quiet, quietId), quietId);

    // By now the beating page has outlived the idle timeout on its first socket.
    await beating.waitForFunction(() => Number(document.getElementById('app').dataset.pongs) >= 6, null, { timeout: 5_000, polling: 50 });
    assert.equal(Date.now() - beating.sockets[0].createdAt > 2_500, true);
    assert.equal(beating.sockets.length, 1);
    assert.equal(beating.sockets[0].closedAt, 0, 'still open');
    assert.equal(await state(beating), 'connected');
    assert.equal(await beating.getAttribute('#app', 'data-connection-id'), beatingId);
    assert.ok(sentActions(beating, 'ping').length >= 6, 'pings sent as {"action":"ping"}');
    assert.equal(Number(await beating.getAttribute('#app', 'data-pings')) >= 6, true);
    assert.ok(beating.sockets[0].received.some((p) => JSON.parse(p).type === 'pong'));
    const log = await beating.textContent('#log');
    assert.doesNotMatch(log, /pong/i, 'pong is not shown');
    await assertClean(beating);
    await assertClean(quiet);
  } finally {
    await idle.stop();
  }
});

test('a page that is chatting sends no heartbeat; once quiet for the interval it does', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), `${stack.page}?heartbeat=1`);
  await connect(page);
  // A message every 0.4 s for 3 s: its own frames keep the connection alive.
  for (let n = 0; n < 8; n += 1) {
    await send(page, `still talking ${n}`);
    await page.waitForTimeout(400);
  }
  assert.equal(sentActions(page, 'ping').length, 0, 'no ping while messages go out');
  assert.equal(await page.getAttribute('#app', 'data-pings'), '0');
  // Quiet now: a ping about a second after the last message, then one a second.
  await page.waitForFunction(() => Number(document.getElementById('app').dataset.pongs) >= 2, null, { timeout: 5_000, polling: 50 });
  assert.ok(sentActions(page, 'ping').length >= 2);
  await assertClean(page);
});

test('an empty frame (what API Gateway sends for a two-way reply without a body) shows nothing', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext();
  // Playwright's `framereceived` leaves out empty frames: the page's own
  // `message` events show what arrived.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__frames = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => window.__frames.push(event.data));
      }
    };
  });
  const page = await openPage(context, stack.page);
  const id = await connect(page);
  // The local Management API posts exactly what it is given, as AWS's does.
  const post = (body) => new Promise((resolve, reject) => {
    const request = http.request(
      `${stack.page}dev/@connections/${encodeURIComponent(id)}`,
      { method: 'POST', headers: { 'content-length': Buffer.byteLength(body) } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
  const linesBefore = await page.$$eval('#log li', (items) => items.length);
  assert.equal(await post(''), 200);
  assert.equal(await post('{"type":"notice","message":"after the empty frame"}'), 200);
  await waitForLine(page, /after the empty frame/);
  const received = await page.evaluate(() => window.__frames);
  assert.ok(received.includes(''), `the empty frame did arrive: ${JSON.stringify(received)}`);
  const lines = await page.$$eval('#log li', (items) => items.map((li) => li.textContent));
  assert.equal(lines.length, linesBefore + 1, `only the notice was added: ${JSON.stringify(lines)}`);
  assert.ok(!lines.some((line) => /^Server:\s*$/.test(line)), 'no empty "Server:" entry');
  await assertClean(page);
});

test('the 2-hour limit: a 1001 close from the server reconnects', { timeout: TEST_TIMEOUT }, async () => {
  const short = await startStack({ args: ['--max-connection-secs', '2'] });
  try {
    const page = await openPage(await newContext(), `${short.page}?heartbeat=0.5`);
    const firstId = await connect(page);
    await page.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1001', null, { timeout: 5_000, polling: 50 });
    assert.match(await statusText(page), /reconnecting in \d+ s…/);
    await waitForState(page, 'connected', 5_000);
    const secondId = await waitForWelcome(page, firstId);
    assert.notEqual(secondId, firstId);
    assert.equal(await page.getAttribute('#app', 'data-reconnects'), '1');
    await waitForLine(page, /Connection closed \(1001 going away/);
    await assertClean(page);
  } finally {
    await short.stop();
  }
});

test('an abnormal close reconnects with growing backoff, says so, and Disconnect stops it', { timeout: TEST_TIMEOUT }, async () => {
  const port = await freePort();
  const first = await startStack({ port });
  let second;
  try {
    const page = await openPage(await newContext(), first.page);
    const firstId = await connect(page);
    await send(page, 'before the crash');
    await waitForMessages(page, 1);

    const killedAt = Date.now();
    await first.stop('SIGKILL'); // no close frame: 1006
    await page.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1006', null, { timeout: 5_000, polling: 50 });
    assert.equal(await state(page), 'error');
    assert.match(await statusText(page), /^Error: connection closed \(1006 connection lost\) — reconnecting in [01] s…$/);
    await waitForLine(page, /Connection closed \(1006 connection lost\)\. Reconnecting in 1 s…/);
    await page.screenshot({ path: path.join(artifacts, 'reconnecting.png') });

    // Two failed attempts, further apart each time: 0.5–1 s, then 1–2 s.
    await waitUntil(() => page.sockets.length >= 3, 6_000, 'two reconnect attempts');
    const gap1 = page.sockets[1].createdAt - killedAt;
    const gap2 = page.sockets[2].createdAt - page.sockets[1].createdAt;
    assert.ok(gap1 >= 400 && gap1 <= 2_000, `first retry after ${gap1} ms`);
    assert.ok(gap2 >= 900 && gap2 <= 3_000, `second retry after ${gap2} ms`);
    assert.match(await statusText(page), /^Error: connection refused or server unreachable — reconnecting in \d s…$|^Connecting \(attempt \d\)…$/);
    assert.match(await page.textContent('#connect-error'), /^The server refused the connection to #lobby, or could not be reached/);

    second = await startStack({ port });
    await waitForState(page, 'connected', 8_000);
    const secondId = await waitForWelcome(page, firstId);
    assert.notEqual(secondId, firstId);
    assert.equal(page.sockets.at(-1).url, `${first.ws}?room=lobby`);
    assert.equal(await page.textContent('#connect-error'), '', 'the refusal message goes once connected');
    // Sending works again.
    await send(page, 'after the restart');
    await page.waitForFunction(() => [...document.querySelectorAll('#log li.msg .text')].some((el) => el.textContent === 'after the restart'), null, { polling: 50 });
    const lines = await messages(page);
    assert.deepEqual(lines.map((m) => [m.text, m.own]), [['before the crash', true], ['after the restart', true]]);

    // Disconnect while waiting to reconnect stops the retries.
    await second.stop('SIGTERM'); // close frame 1001
    await page.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1001', null, { timeout: 5_000, polling: 50 });
    assert.equal(await state(page), 'reconnecting');
    const sockets = page.sockets.length;
    await page.click('#disconnect');
    await waitForState(page, 'disconnected');
    await page.waitForTimeout(1_500);
    assert.equal(page.sockets.length, sockets, 'no attempt after Disconnect');
    assert.equal(await state(page), 'disconnected');
    await assertClean(page);
  } finally {
    await first.stop('SIGKILL');
    if (second) await second.stop();
  }
});

test('length limit: shown before it is hit, enforced in bytes, server errors inline; works from a static host', { timeout: TEST_TIMEOUT }, async () => {
  const host = await startStaticHost();
  // A page from elsewhere may open WebSockets only when the stack allows its origin.
  const origin = host.url.replace(/\/$/, '');
  const small = await startStack({ args: ['--max-message-bytes', '64', '--allowed-origin', origin] });
  try {
    // Served by the stack: the stack's limit.
    const page = await openPage(await newContext(), small.page);
    assert.equal(await page.textContent('#counter'), '0 / 64 bytes');
    await connect(page);
    const tooLong = 'é'.repeat(33); // 33 characters, 66 bytes
    await page.fill('#message', tooLong);
    assert.equal(await page.textContent('#counter'), '66 / 64 bytes — 2 over the limit');
    assert.equal(await page.isDisabled('#send'), true);
    await page.press('#message', 'Enter');
    assert.match(await page.textContent('#send-error'), /^Too long: 66 bytes; the limit is 64 bytes\.$/);
    assert.equal(sentActions(page, 'sendmessage').length, 0, 'nothing sent');
    const fits = 'é'.repeat(32); // 64 bytes
    await page.fill('#message', fits);
    assert.equal(await page.textContent('#send-error'), '');
    assert.equal(await page.isDisabled('#send'), false);
    await page.press('#message', 'Enter');
    await waitForMessages(page, 1);
    assert.equal((await messages(page))[0].text, fits);

    // Whitespace only: not sent.
    await page.fill('#message', '   ');
    assert.equal(await page.isDisabled('#send'), true);
    await page.press('#message', 'Enter');
    assert.equal(await page.textContent('#send-error'), 'Type a message first.');

    // Shift+Enter is a new line, Enter sends.
    await page.fill('#message', 'line one');
    await page.press('#message', 'Shift+Enter');
    await page.locator('#message').pressSequentially('line two');
    await page.press('#message', 'Enter');
    await waitForMessages(page, 2);
    assert.equal((await messages(page))[1].text, 'line one\nline two');
    assert.equal(sentActions(page, 'sendmessage').length, 2);

    // "ping" alone is the old heartbeat: the server would swallow it, so it is not sent.
    await send(page, 'ping');
    assert.match(await page.textContent('#send-error'), /reserved for the heartbeat/);
    assert.equal(sentActions(page, 'sendmessage').length, 2);

    // Should a frame over API Gateway's 32 KB ever go out, the server closes
    // with 1009: the client says so next to the input and reconnects.
    await page.evaluate(() => {
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        return send.call(this, String(data).replace('"message":"boom"', `"message":"${'x'.repeat(40_000)}"`));
      };
    });
    await send(page, 'boom');
    await page.waitForFunction(() => document.getElementById('app').dataset.lastClose === '1009', null, { timeout: 5_000, polling: 50 });
    assert.equal(await page.textContent('#send-error'), 'The server closed the connection because a message was too big (1009).');
    assert.match(await statusText(page), /^Error: connection closed \(1009 message too big\) — reconnecting in \d s…$/);
    await waitForState(page, 'connected', 5_000);
    await assertClean(page);

    // From a static host: no /config.json, so an empty field and the default limit.
    const away = await openPage(await newContext(), host.url);
    assert.equal(await away.inputValue('#ws-url'), '');
    assert.equal(await away.isHidden('#dashboard-link'), true, 'no metrics dashboard on a static host');
    assert.equal(await away.textContent('#counter'), '0 / 8192 bytes');
    await connect(away, small.ws);
    const hundred = 'x'.repeat(100);
    await send(away, hundred);
    // The server says no, inline, and the client learns the real limit.
    await away.waitForFunction(() => document.getElementById('send-error').textContent !== '', null, { polling: 50 });
    assert.match(await away.textContent('#send-error'), /64/);
    assert.equal(await away.textContent('#counter'), '100 / 64 bytes — 36 over the limit');
    assert.equal(await away.inputValue('#message'), hundred, 'the rejected text is given back');
    assert.equal(await state(away), 'connected');
    assert.equal(await away.locator('#log li.msg:not(.history)').count(), 0, 'nothing new: only the history');
    await assertClean(away);
  } finally {
    await host.close();
    await small.stop();
  }
});

test('the message log keeps a bounded number of lines', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(await newContext(), `${stack.page}?max-lines=10`);
  await connect(page);
  for (let i = 1; i <= 15; i += 1) await send(page, `line ${i}`);
  await page.waitForFunction(() => [...document.querySelectorAll('#log li.msg .text')].some((el) => el.textContent === 'line 15'), null, { polling: 50 });
  assert.equal(await page.locator('#log > li').count(), 10);
  assert.deepEqual((await messages(page)).map((m) => m.text), Array.from({ length: 10 }, (_, i) => `line ${i + 6}`));
  // What was above is gone, so no older page loads into its place.
  assert.equal(await page.getAttribute('#log-top', 'data-state'), 'trimmed');
  assert.match(await page.textContent('#log-top'), /this page keeps the last 10 lines/);
  await assertClean(page);
});

// The protocol client's state machine (web/chat-client.js) in Node, with a
// fake WebSocket and fake timers: no browser, no server.
//
// Run with `npm run unit` in web/tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import ChatClient from '../../chat-client.js';
import { FakeClock, fakeSocketClass } from './fakes.mjs';

const URL = 'wss://chat.example/dev';

/** A client on fakes, recording every event it emits as [type, detail]. */
function harness({ random = () => 0.5, heartbeatMs, historySpace } = {}) {
  const clock = new FakeClock();
  const Socket = fakeSocketClass();
  const client = new ChatClient({ WebSocket: Socket, timers: clock.api, now: clock.now, random, heartbeatMs, historySpace });
  const events = [];
  for (const type of [
    'connecting', 'openFailed', 'open', 'close', 'teardown', 'reset', 'welcome', 'message', 'joined', 'left', 'online',
    'historyChange', 'historyPage', 'gapUnfilled', 'segment', 'ping', 'pong', 'deleted', 'removed', 'moderated',
    'error', 'notice', 'serverText',
  ]) {
    client.on(type, (detail) => events.push([type, detail]));
  }
  const of = (type) => events.filter(([t]) => t === type).map(([, detail]) => detail);
  const socket = () => Socket.made[Socket.made.length - 1];
  return { client, clock, sockets: Socket.made, socket, events, of };
}

const welcome = (id, extra = {}) => ({ type: 'welcome', connection_id: id, name: null, room: 'lobby', ...extra });
const chat = (id, text, sender = 'other=') => ({
  type: 'message', message_id: id, connection_id: sender, name: null, text, timestamp: '2026-11-28T00:13:36.123Z', room: 'lobby',
});
/** A history page as the server sends it: newest first. */
const page = (messages, cursor) => ({ type: 'history', room: 'lobby', messages: messages.slice().reverse(), cursor });

/** Connected to `lobby`, the socket open. */
function opened(h) {
  h.client.connect({ url: URL, room: 'lobby' });
  h.socket().open();
}

/** Connected, welcomed as `id`, its latest page answered with `history`. */
function joined(h, { id = 'me=', history = [], cursor = null } = {}) {
  opened(h);
  h.socket().receive(welcome(id));
  h.socket().receive(page(history, cursor));
}

test('connect opens one socket on the URL with room, name and token; open is connected', () => {
  const h = harness();
  assert.equal(h.client.connect({ url: `${URL}?stage=1&room=old`, room: 'books', name: 'Zoë Ω', token: 'a.b.c' }), true);
  assert.equal(h.sockets.length, 1);
  assert.equal(h.socket().url, 'wss://chat.example/dev?stage=1&room=books&name=Zo%C3%AB%20%CE%A9&token=a.b.c');
  assert.equal(h.client.phase, 'connecting');
  assert.equal(h.client.connect({ url: URL, room: 'books' }), false, 'never a second socket');
  assert.equal(h.sockets.length, 1);
  h.socket().open();
  assert.equal(h.client.phase, 'connected');
  assert.equal(h.client.isOpen, true);
  assert.equal(h.client.openedAt, h.clock.time);
  assert.equal(h.of('open').length, 1);
});

test('a socket that cannot be made fails without reconnecting, and without the token in the reason', () => {
  const h = harness();
  h.client.WebSocket = class {
    constructor(url) {
      throw new Error(`The URL '${url}' is invalid.`);
    }
  };
  h.client.connect({ url: URL, room: 'lobby', token: 'secret.token.sig' });
  assert.equal(h.client.phase, 'error');
  assert.equal(h.client.active, false);
  const [{ why }] = h.of('openFailed');
  assert.equal(why, `The URL '${URL}' is invalid.`);
  assert.doesNotMatch(why, /secret/);
});

test('reconnect delays double from 0.5–1 s up to 15–30 s, with jitter inside the bounds', () => {
  for (const [random, pick] of [[() => 0, 'low'], [() => 0.999999, 'high']]) {
    const h = harness({ random });
    h.client.connect({ url: URL, room: 'lobby' });
    const delays = [];
    for (let attempt = 0; attempt < 8; attempt += 1) {
      h.socket().drop(1006); // refused or unreachable: never opened
      const [close] = h.of('close').slice(-1);
      assert.equal(close.wasOpen, false);
      assert.equal(h.client.phase, 'error');
      delays.push(close.retryIn);
      const before = h.sockets.length;
      h.clock.advance(close.retryIn - 1);
      assert.equal(h.sockets.length, before, 'not before the delay');
      h.clock.advance(1);
      assert.equal(h.sockets.length, before + 1, 'on time');
    }
    const low = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000];
    const high = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
    assert.deepEqual(delays, pick === 'low' ? low : high, pick);
    assert.equal(h.client.reconnects, 8);
  }
});

test('a connection that stayed open 10 s resets the backoff; a shorter one does not', () => {
  const h = harness({ random: () => 0 });
  h.client.connect({ url: URL, room: 'lobby' });
  for (let i = 0; i < 4; i += 1) {
    h.socket().drop(1006);
    h.clock.advance(h.of('close').at(-1).retryIn);
  }
  assert.equal(h.of('close').at(-1).retryIn, 4000);

  h.socket().open();
  h.clock.advance(9_999);
  h.socket().drop(1001, 'Going away');
  let close = h.of('close').at(-1);
  assert.equal(close.wasOpen, true);
  assert.equal(close.retryIn, 8000, 'open under 10 s: backoff continues');
  assert.equal(h.client.phase, 'reconnecting', 'a normal close is not an error');

  h.clock.advance(close.retryIn);
  h.socket().open();
  h.clock.advance(10_000);
  h.socket().drop(1006);
  close = h.of('close').at(-1);
  assert.equal(close.retryIn, 500, 'stable: back to the first delay');
  assert.equal(h.client.phase, 'error');
});

test('retryNow reconnects at once; disconnect closes with 1000 and stops reconnecting', () => {
  const h = harness();
  h.client.connect({ url: URL, room: 'lobby' });
  h.socket().drop(1006);
  assert.equal(h.client.reconnecting, true);
  h.client.retryNow();
  assert.equal(h.sockets.length, 2);
  assert.equal(h.client.reconnecting, false);

  h.socket().open();
  const open = h.socket();
  assert.equal(h.client.disconnect(), true);
  assert.deepEqual(open.closedWith, { code: 1000, reason: 'Closed by the user' });
  assert.equal(h.client.phase, 'disconnected');
  assert.equal(h.client.active, false);
  open.drop(1000); // the close event of a socket already let go: nothing
  h.clock.advance(120_000);
  assert.equal(h.sockets.length, 2);
  assert.equal(h.client.disconnect(), false, 'nothing left to close');
});

test('the heartbeat goes only after the quiet time, and never while chatting', () => {
  const h = harness({ heartbeatMs: 60_000 });
  opened(h);
  h.clock.advance(30_000);
  h.client.sendMessage('hello');
  h.clock.advance(59_999); // 59.999 s since the message
  assert.deepEqual(h.socket().sentActions('ping'), []);
  h.clock.advance(15_000); // the next check after 60 s of quiet
  assert.equal(h.socket().sentActions('ping').length, 1);
  assert.equal(h.client.pings, 1);
  h.clock.advance(45_000);
  assert.equal(h.socket().sentActions('ping').length, 1, 'the ping itself counts as sent');
  h.clock.advance(15_000);
  assert.equal(h.socket().sentActions('ping').length, 2);

  h.socket().receive({ type: 'pong', message: 'pong' });
  assert.equal(h.client.pongs, 1);
  assert.equal(h.of('message').length, 0, 'a pong is no message');

  h.client.setHeartbeatMs(1_000);
  h.clock.advance(1_000);
  assert.equal(h.socket().sentActions('ping').length, 3, 'a new quiet time applies at once');
});

test('welcome: own id, moderator flag, the online list with yourself first, then the latest page', () => {
  const h = harness();
  opened(h);
  assert.deepEqual(h.socket().sentActions('history'), [], 'waits for welcome');
  h.socket().receive(welcome('me=', {
    name: 'Carol',
    moderator: true,
    online: [{ connection_id: 'ada=', name: 'Ada' }, { connection_id: 'me=', name: 'Carol' }, { connection_id: 'anon=', name: null }],
    online_count: 5,
  }));
  assert.equal(h.client.ownId, 'me=');
  assert.equal(h.client.isOwn('me='), true);
  assert.equal(h.client.moderator, true);
  assert.deepEqual(h.of('welcome'), [{ id: 'me=', name: 'Carol', room: 'lobby', moderator: true }]);
  const { online } = h.client;
  assert.equal(online.known, true);
  assert.deepEqual([...online.members], [['me=', 'Carol'], ['ada=', 'Ada'], ['anon=', '']]);
  assert.equal(online.unlisted, 2, 'counted, not listed');
  assert.deepEqual(h.socket().sentActions('history'), [{ action: 'history', limit: 50 }]);

  h.socket().drop(1006);
  assert.equal(h.client.moderator, false, 'per socket');
  assert.equal(h.client.ownId, '');
  assert.equal(h.client.online.known, false);
  assert.equal(h.client.isOwn('me='), true, 'an earlier connection stays ours');

  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  h.socket().receive(welcome('me2=', { moderator: 'yes' }));
  assert.equal(h.client.moderator, false, 'only `moderator: true` makes one');
});

test('without a welcome, the latest page is asked for 3 s after the socket opened', () => {
  const h = harness();
  opened(h);
  h.clock.advance(2_999);
  assert.equal(h.socket().sentActions('history').length, 0);
  h.clock.advance(1);
  assert.equal(h.socket().sentActions('history').length, 1);
  h.socket().receive(welcome('me='));
  assert.equal(h.socket().sentActions('history').length, 1, 'asked once');
});

test('an empty welcome list is unknown, not nobody', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me=', { online: [], online_count: 0 }));
  assert.equal(h.client.online.known, false);
});

test('presence is idempotent: a join or leave told once, a leave never re-added', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me=', { online: [{ connection_id: 'me=' }, { connection_id: 'ada=', name: 'Ada' }], online_count: 2 }));
  const bob = { connection_id: 'bob=', name: 'Bob', connected_at: '2026-11-28T00:14:58.250Z' };
  const presence = { type: 'presence', room: 'lobby', joined: [bob], left: [] };
  h.socket().receive(presence);
  h.socket().receive(presence);
  assert.deepEqual(h.of('joined'), [{ id: 'bob=', name: 'Bob' }]);
  assert.equal(h.client.online.members.get('bob='), 'Bob');

  h.socket().receive({ type: 'presence', room: 'lobby', joined: [{ connection_id: 'ada=', name: 'Ada' }], left: [] });
  assert.equal(h.of('joined').length, 1, 'listed in the welcome: no news');

  const leave = { type: 'presence', room: 'lobby', joined: [], left: [{ connection_id: 'bob=', name: 'Bob', duration_seconds: 84.877 }] };
  h.socket().receive(leave);
  h.socket().receive(leave);
  h.socket().receive(presence); // her join again, after her leave
  assert.equal(h.of('left').length, 1);
  assert.equal(h.of('left')[0].departure.duration_seconds, 84.877);
  assert.equal(h.client.online.members.has('bob='), false);
  assert.equal(h.of('joined').length, 1);
  assert.deepEqual([...h.client.online.members.keys()], ['me=', 'ada=']);
});

test('a leave of someone only counted lowers the count of the unlisted', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me=', { online: [{ connection_id: 'me=' }], online_count: 3 }));
  assert.equal(h.client.online.unlisted, 2);
  h.socket().receive({ type: 'presence', room: 'lobby', joined: [], left: [{ connection_id: 'far=' }] });
  assert.equal(h.client.online.unlisted, 1);
});

test('a crowd\'s presence frame replaces the list and the count, telling nobody one by one', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me=', { online: [{ connection_id: 'me=' }, { connection_id: 'ada=', name: 'Ada' }, { connection_id: 'bob=', name: 'Bob' }], online_count: 150 }));
  assert.equal(h.client.online.unlisted, 147);
  h.socket().receive({
    type: 'presence',
    room: 'lobby',
    message: '60 joined and 1 left; 209 people are here.',
    joined: [{ connection_id: 'cy=', name: 'Cy' }],
    left: [{ connection_id: 'bob=', name: 'Bob', duration_seconds: 3 }],
    joined_count: 60,
    left_count: 1,
    online_count: 209,
    online: [{ connection_id: 'cy=', name: 'Cy' }, { connection_id: 'bob=', name: 'Bob' }, { connection_id: 'dee=' }],
  });
  assert.deepEqual([...h.client.online.members.keys()], ['me=', 'cy=', 'dee='], 'yourself first; Bob left, whatever the index says');
  assert.equal(h.client.online.members.size + h.client.online.unlisted, 209);
  assert.equal(h.of('joined').length, 0, 'nobody told one by one');
  assert.equal(h.of('left').length, 0);
  assert.equal(h.of('online').length > 0, true);
});

test('messages are told once by message_id, live and in history alike', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me='));
  h.socket().receive(chat('m3', 'said while the page loads'));
  h.socket().receive(chat('m3', 'said while the page loads')); // delivered again
  assert.deepEqual(h.of('message').map(({ frame }) => frame.message_id), ['m3']);

  h.socket().receive(page([chat('m1', 'one'), chat('m2', 'two'), chat('m3', 'said while the page loads')], null));
  const [latest] = h.of('historyPage');
  assert.equal(latest.kind, 'latest');
  assert.deepEqual(latest.messages.map((m) => m.message_id), ['m1', 'm2'], 'oldest first, m3 not again');
  assert.equal(h.client.segment.status, 'joined');

  h.socket().receive(chat('m2', 'two'));
  assert.equal(h.of('message').length, 1, 'a history message is not told again live');
  h.socket().receive(chat('m4', 'four'));
  assert.equal(h.of('message').length, 2);
});

test('own messages: by connection id, and by text before welcome (an echo may overtake it)', () => {
  const h = harness();
  opened(h);
  h.client.sendMessage('hello');
  assert.deepEqual(h.socket().sentActions('sendmessage'), [{ action: 'sendmessage', message: 'hello' }]);
  h.socket().receive(chat('m1', 'hello', 'me='));
  h.socket().receive(chat('m2', 'hello', 'someone='));
  assert.deepEqual(h.of('message').map(({ own }) => own), [true, false], 'one echo per text sent');
  h.socket().receive(welcome('me='));
  h.socket().receive(chat('m3', 'again', 'me='));
  assert.equal(h.of('message')[2].own, true);
});

test('a refused message is taken back: its text, once', () => {
  const h = harness();
  joined(h);
  h.client.sendMessage('too long');
  h.socket().receive({ type: 'error', code: 'message_too_long', message: 'Too long', limit_bytes: 4 });
  const [error] = h.of('error');
  assert.equal(error.rejected, true);
  assert.equal(h.client.takeBackLast(), 'too long');
  assert.equal(h.client.takeBackLast(), '');
  h.socket().receive({ type: 'error', code: 'rate_limited', message: 'Slow down', action: 'sendmessage' });
  assert.equal(h.of('error')[1].rejected, false);
});

test('history paging: older pages from each cursor until it is null; one request at a time', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me='));
  assert.equal(h.client.loadOlder(), false, 'the latest page first');
  h.socket().receive(page([chat('m51', 'x')], 'c1'));
  assert.equal(h.client.history.older, 'c1');
  assert.equal(h.client.loadOlder(), true);
  assert.equal(h.client.loadOlder(), false, 'one in flight');
  h.socket().receive(page([chat('m1', 'first'), chat('m2', 'second')], null));
  const older = h.of('historyPage').at(-1);
  assert.equal(older.kind, 'older');
  assert.deepEqual(older.messages.map((m) => m.text), ['first', 'second']);
  assert.equal(h.client.history.older, null, 'the beginning');
  assert.equal(h.client.loadOlder(), false);
  assert.deepEqual(h.socket().sentActions('history'), [
    { action: 'history', limit: 50 },
    { action: 'history', limit: 50, before: 'c1' },
  ]);
  assert.equal(h.client.historyRequests, 2);
});

test('one history request at a time, whatever its kind (the protocol has no request ids)', () => {
  const h = harness();
  joined(h, { history: [chat('m9', 'x')], cursor: 'c1' });
  h.socket().drop(1006);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  assert.equal(h.client.loadOlder(), true, 'scrolled up before the welcome');
  h.socket().receive(welcome('me2='));
  assert.deepEqual(h.socket().sentActions('history'), [{ action: 'history', limit: 50, before: 'c1' }]);
});

test('history asks for no more than the caller can show, and nothing when it can show none', () => {
  let space = 7;
  const h = harness({ historySpace: () => space });
  joined(h, { history: [chat('m9', 'x')], cursor: 'c1' });
  assert.equal(h.socket().sentActions('history')[0].limit, 7);
  space = 0;
  assert.equal(h.client.loadOlder(), false);
  h.client.historyTrimmed();
  space = 100;
  assert.equal(h.client.loadOlder(), false, 'the caller dropped its top: nothing to join older pages to');
});

test('a reconnect fills the gap: pages back until one overlaps, at most 4, else says so', () => {
  const h = harness();
  joined(h, { history: [chat('m1', 'one'), chat('m2', 'two')], cursor: null });

  // Away while m3..m9 were said: each page of 2 misses the overlap until the third.
  h.socket().drop(1006);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  h.socket().receive(welcome('me2='));
  assert.equal(h.client.segment.reconnect, true);
  h.socket().receive(page([chat('m8', 'eight'), chat('m9', 'nine')], 'g1'));
  h.socket().receive(page([chat('m6', 'six'), chat('m7', 'seven')], 'g2'));
  h.socket().receive(page([chat('m2', 'two'), chat('m3', 'three')], 'g3'));
  assert.deepEqual(h.socket().sentActions('history'), [
    { action: 'history', limit: 50 },
    { action: 'history', limit: 50, before: 'g1' },
    { action: 'history', limit: 50, before: 'g2' },
  ], 'stops at the page that overlaps');
  const pages = h.of('historyPage').slice(1);
  assert.deepEqual(pages.map((p) => p.kind), ['latest', 'gap', 'gap']);
  assert.deepEqual(pages.map((p) => p.messages.map((m) => m.message_id)), [['m8', 'm9'], ['m6', 'm7'], ['m3']]);
  assert.equal(h.client.segment.status, 'reconnected');
  assert.equal(h.client.segment.missed, 5);
  assert.equal(h.of('gapUnfilled').length, 0);

  // Away again while much was said: 4 pages, none overlapping.
  h.socket().drop(1001);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  h.socket().receive(welcome('me3='));
  for (let n = 0; n < 4; n += 1) h.socket().receive(page([chat(`x${n}`, 'x')], `h${n}`));
  assert.equal(h.socket().sentActions('history').length, 4, 'GAP_PAGES');
  assert.equal(h.of('gapUnfilled').length, 1);
  assert.equal(h.client.segment.status, 'reconnected');

  // And once more with nothing said.
  h.socket().drop(1001);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  h.socket().receive(welcome('me4='));
  h.socket().receive(page([chat('x3', 'x')], 'h4'));
  assert.equal(h.client.segment.status, 'nothing-missed');
  assert.equal(h.socket().sentActions('history').length, 1);
});

test('a history answer that never comes fails after 15 s; a socket closed first says so', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me='));
  h.clock.advance(14_999);
  assert.equal(h.client.segment.status, 'loading');
  h.clock.advance(1);
  assert.equal(h.client.segment.status, 'failed');
  assert.equal(h.client.segment.why, 'no answer from the server');
  assert.equal(h.client.history.request, null);

  h.socket().drop(1006);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  const { segment } = h.client;
  h.socket().drop(1006);
  assert.equal(segment.status, 'failed');
  assert.equal(segment.why, '', 'closed before the page came');
});

test('a server without the history action: no history, and no more asking', () => {
  const h = harness();
  opened(h);
  h.socket().receive(welcome('me='));
  h.socket().receive({ type: 'error', code: 'unknown_action', message: 'Unknown action', valid_actions: ['sendmessage', 'ping'] });
  assert.equal(h.client.history.unsupported, true);
  assert.equal(h.client.segment.status, 'none');
  assert.equal(h.of('error').length, 0, 'the answer to the history request');
  h.socket().drop(1006);
  h.clock.advance(h.of('close').at(-1).retryIn);
  h.socket().open();
  h.socket().receive(welcome('me2='));
  assert.equal(h.socket().sentActions('history').length, 0);
  assert.equal(h.client.segment.status, 'none');
});

test('removed: told why, closed, and never reconnected', () => {
  const h = harness();
  joined(h);
  h.socket().receive({
    type: 'removed', room: 'lobby', reason: 'spam', banned_until: '2026-11-28T01:13:36.123Z', message: 'A moderator banned you',
  });
  assert.deepEqual(h.of('removed'), [{ room: 'lobby', reason: 'spam', bannedUntil: '2026-11-28T01:13:36.123Z' }]);
  assert.equal(h.client.wanted, false, 'no longer wants a connection');
  h.socket().drop(1000);
  const [close] = h.of('close');
  assert.equal(close.retryIn, null);
  assert.ok(close.removed);
  assert.equal(h.client.phase, 'disconnected');
  h.clock.advance(10 * 60_000);
  assert.equal(h.sockets.length, 1);

  h.client.connect({ url: URL, room: 'lobby' });
  assert.equal(h.client.removed, null, 'a new connection starts unremoved');
});

test('deleted: kept by id and told; another room\'s frames are ignored', () => {
  const h = harness();
  joined(h);
  h.socket().receive({ type: 'deleted', room: 'lobby', message_id: 'm1', by: 'moderator', at: '2026-11-28T00:20:00.000Z' });
  h.socket().receive({ type: 'deleted', room: 'elsewhere', message_id: 'm2', by: 'author' });
  h.socket().receive({ ...chat('m5', 'elsewhere'), room: 'elsewhere' });
  assert.deepEqual(h.of('deleted'), [{ id: 'm1', by: 'moderator' }]);
  assert.equal(h.client.deleted.get('m1'), 'moderator');
  assert.equal(h.client.deleted.has('m2'), false);
  assert.equal(h.of('message').length, 0);
});

test('moderation frames: remove, ban and delete as the protocol has them', () => {
  const h = harness();
  assert.equal(h.client.remove('bob='), false, 'not connected');
  joined(h);
  assert.equal(h.client.remove('bob=', 'flooding'), true);
  h.client.ban('eve=', 60);
  h.client.deleteMessage('m1');
  assert.deepEqual(h.socket().sent.slice(-3), [
    { action: 'remove', connection_id: 'bob=', reason: 'flooding' },
    { action: 'ban', connection_id: 'eve=', minutes: 60 },
    { action: 'delete', message_id: 'm1' },
  ]);
  h.socket().receive({ type: 'moderated', action: 'remove', message: 'Removed Bob from lobby.' });
  assert.equal(h.of('moderated')[0].frame.message, 'Removed Bob from lobby.');
});

test('rejoin: a new room is a new socket and a fresh start; a new name keeps the room\'s state', () => {
  const h = harness();
  joined(h, { history: [chat('m1', 'one')] });
  assert.equal(h.client.rejoin({ room: 'lobby' }), false, 'nothing changed');
  const first = h.socket();
  assert.equal(h.client.rejoin({ room: 'lobby', name: 'Ada' }), true);
  assert.deepEqual(first.closedWith, { code: 1000, reason: 'Changing name' });
  assert.match(h.socket().url, /\?room=lobby&name=Ada$/);
  assert.equal(h.of('reset').length, 1, 'only the first connect');
  assert.equal(h.client.history.started, true);

  const second = h.socket();
  h.client.rejoin({ room: 'books', name: 'Ada' });
  assert.deepEqual(second.closedWith, { code: 1000, reason: 'Changing room' });
  assert.deepEqual(h.of('reset').at(-1), { room: 'books' });
  assert.equal(h.client.history.room, 'books');
  assert.equal(h.client.history.started, false);
  h.socket().open();
  h.socket().receive(welcome('me3=', { room: 'books' }));
  h.socket().receive({ ...chat('m1', 'one'), room: 'books' });
  assert.equal(h.of('message').length, 1, 'ids seen in the old room do not hide the new room\'s');
});

test('frames that are empty, not JSON objects, or of no known type', () => {
  const h = harness();
  joined(h);
  h.socket().receive('');
  h.socket().receive('plain text');
  h.socket().receive('[1,2]');
  h.socket().receive({ message: 'Internal server error', connectionId: 'x', requestId: 'y' });
  assert.deepEqual(h.of('serverText'), [{ text: 'plain text' }, { text: '[1,2]' }]);
  assert.equal(h.of('notice')[0].frame.message, 'Internal server error');
});

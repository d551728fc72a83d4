// The chat's pure rules (web/chat-rules.js) in Node: what the page checks
// before connecting or sending, how it builds the socket's URL, and how it
// writes times. No browser, no server.
//
// Run with `npm run unit` in web/tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import rules from '../../chat-rules.js';

const refused = (result) => {
  assert.equal(result.ok, false, `refused: ${JSON.stringify(result)}`);
  return result.why;
};

test('rooms: 1 to 64 ASCII letters, digits, - and _; empty is lobby; the reason names the character', () => {
  assert.deepEqual(rules.checkRoom(''), { ok: true, value: 'lobby' });
  assert.deepEqual(rules.checkRoom('  books  '), { ok: true, value: 'books' });
  assert.deepEqual(rules.checkRoom('Team_a-1'), { ok: true, value: 'Team_a-1' });
  assert.equal(rules.checkRoom('r'.repeat(64)).ok, true);
  assert.equal(refused(rules.checkRoom('r'.repeat(65))), 'Room names are 1 to 64 characters; this one has 65.');
  assert.equal(refused(rules.checkRoom('bad!room')), 'Room names use only letters A–Z and a–z, digits, - and _ (not “!”).');
  assert.match(refused(rules.checkRoom('café')), /\(not “é”\)\.$/);
  assert.match(refused(rules.checkRoom('two words')), /\(not U\+0020\)\.$/, 'a space is named by its code point');
  assert.match(refused(rules.checkRoom('a\u0007b')), /\(not U\+0007\)\.$/);
});

test('names: trimmed as the server trims; controls, reordering and invisible characters refused', () => {
  assert.deepEqual(rules.checkName('  Ada  '), { ok: true, value: 'Ada' });
  assert.deepEqual(rules.checkName('\u3000Ada\u00A0'), { ok: true, value: 'Ada' }, 'Unicode white space');
  assert.deepEqual(rules.checkName('   '), { ok: true, value: '' }, 'no name');
  assert.deepEqual(rules.checkName(' Zoë Ω 李 '), { ok: true, value: 'Zoë Ω 李' });
  assert.deepEqual(rules.checkName('<img src=x onerror=alert(1)>'), { ok: true, value: '<img src=x onerror=alert(1)>' });
  const family = '👨\u200D👩\u200D👧';
  assert.deepEqual(rules.checkName(family), { ok: true, value: family }, 'joiners inside emoji');
  assert.equal(rules.checkName('🙂'.repeat(32)).ok, true, 'characters, not UTF-16 units');

  assert.equal(refused(rules.checkName('n'.repeat(33))), 'Names are 1 to 32 characters once trimmed; this one has 33.');
  assert.equal(refused(rules.checkName('a\u0007b')), 'Names cannot contain control characters (U+0007).');
  assert.equal(refused(rules.checkName('a\tb')), 'Names cannot contain control characters (U+0009).');
  assert.equal(refused(rules.checkName('\u202Eevil')), 'Names cannot contain characters that reorder text (U+202E).');
  assert.match(refused(rules.checkName('a\u2067b')), /U\+2067/);
  assert.match(refused(rules.checkName('a\u200Fb')), /reorder text \(U\+200F\)/);
  for (const [name, code] of [['a\u200Bb', '200B'], ['\uFEFFAda', 'FEFF'], ['Ad\u2060a', '2060'], ['A\u00ADda', '00AD']]) {
    assert.equal(refused(rules.checkName(name)), `Names cannot contain invisible characters (U+${code}).`);
  }
  assert.equal(refused(rules.checkName('\u200D')), 'Names need at least one visible character.');
  assert.match(refused(rules.checkName('a\uFFFDb')), /U\+FFFD/);
  assert.match(refused(rules.checkName(`${'\u0001'.repeat(40)}`)), /control/, 'a long name of controls says why');
});

test('tokens: Bearer and white space dropped, JWT-shaped, never quoted when refused', () => {
  assert.deepEqual(rules.checkToken(''), { ok: true, value: '' });
  assert.deepEqual(rules.checkToken('Bearer aaa.bbb.ccc'), { ok: true, value: 'aaa.bbb.ccc' });
  assert.deepEqual(rules.checkToken('  bearer  aaa.b\n  bb.c-_c '), { ok: true, value: 'aaa.bbb.c-_c' });
  assert.deepEqual(rules.checkToken('aaa.bbb.'), { ok: true, value: 'aaa.bbb.' }, 'an unsigned token has the shape');
  for (const bad of ['my password', 'aaa.bbb', 'aaa..ccc', 'aaa.b+b.ccc', 'a.b.c.d']) {
    const why = refused(rules.checkToken(bad));
    assert.equal(why, 'This is not a token: a sign-in token (JWT) is three parts of letters, digits, - and _ joined by dots.');
  }
});

test('token claims: the payload read without verifying it; anything else is null', () => {
  const part = (object) => Buffer.from(JSON.stringify(object)).toString('base64url');
  const token = `${part({ alg: 'HS256' })}.${part({ sub: 'alice', name: 'Zoë', exp: 1_800_000_000 })}.sig`;
  assert.deepEqual(rules.tokenClaims(token), { sub: 'alice', name: 'Zoë', exp: 1_800_000_000 });
  assert.equal(rules.tokenClaims(`${part({})}.${part([1, 2])}.sig`), null);
  assert.equal(rules.tokenClaims('aaa.%%%.ccc'), null);
  assert.equal(rules.tokenClaims('no-dots'), null);
});

test('socket URLs: room, then name or token, percent-encoded; old ones replaced, other parameters kept', () => {
  assert.equal(rules.socketUrl('ws://127.0.0.1:8080/dev', 'lobby', '', ''), 'ws://127.0.0.1:8080/dev?room=lobby');
  assert.equal(
    rules.socketUrl('wss://x.example/dev?stage=2&room=old&name=Old&token=old', 'books', ' Zoë Ω ', ''),
    'wss://x.example/dev?stage=2&room=books&name=%20Zo%C3%AB%20%CE%A9%20',
  );
  assert.equal(rules.socketUrl('wss://x.example/dev', 'a', '', 'aaa.bbb.ccc'), 'wss://x.example/dev?room=a&token=aaa.bbb.ccc');
  assert.doesNotMatch(rules.socketUrl('wss://x.example/dev', 'a', 'a b+c&d', ''), /\+|name=a b/, 'a space is %20, + and & are escaped');
  assert.match(rules.socketUrl('wss://x.example/dev', 'a', 'a b+c&d', ''), /name=a%20b%2Bc%26d$/);
});

test('a pasted URL gives up its room, name and token to their fields', () => {
  assert.deepEqual(rules.splitJoinParams('wss://x.example/dev?stage=2'), { url: 'wss://x.example/dev?stage=2', room: null, name: null, token: null });
  assert.deepEqual(rules.splitJoinParams('wss://x.example/dev?room=books&stage=2&name=Ada%20L&token=a.b.c'), {
    url: 'wss://x.example/dev?stage=2', room: 'books', name: 'Ada L', token: 'a.b.c',
  });
  assert.deepEqual(rules.splitJoinParams('ws://127.0.0.1:8080/dev?token=a.b.c'), {
    url: 'ws://127.0.0.1:8080/dev', room: null, name: null, token: 'a.b.c',
  });
});

test('WebSocket URLs: ws:// and wss:// only', () => {
  assert.equal(rules.validWebSocketUrl('ws://127.0.0.1:8080/dev'), true);
  assert.equal(rules.validWebSocketUrl('wss://abc.execute-api.us-east-1.amazonaws.com/dev'), true);
  assert.equal(rules.validWebSocketUrl('http://127.0.0.1/dev'), false);
  assert.equal(rules.validWebSocketUrl('127.0.0.1:8080'), false);
  assert.equal(rules.validWebSocketUrl(''), false);
});

test('times are UTC whatever the local time zone', () => {
  const zone = process.env.TZ;
  try {
    for (const tz of ['UTC', 'Pacific/Kiritimati', 'America/St_Johns']) {
      process.env.TZ = tz;
      assert.equal(rules.utcDateTime(Date.UTC(2026, 10, 28, 9, 0, 5)), '2026-11-28 09:00:05 UTC', tz);
      assert.equal(rules.utcTime('2026-11-28T00:13:36.123Z'), '00:13:36', tz);
      assert.equal(rules.utcTime('2026-11-28T01:13:36+01:00'), '00:13:36', tz);
    }
  } finally {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  }
  assert.equal(rules.utcTime('yesterday'), '');
  assert.equal(rules.utcTime(''), '');
});

test('durations: a session counter and a human reading', () => {
  assert.equal(rules.elapsed(0), '00:00:00');
  assert.equal(rules.elapsed(3_723_999), '01:02:03');
  assert.equal(rules.elapsed(-5_000), '00:00:00');
  assert.equal(rules.humanSeconds(4.24), '4.2 s');
  assert.equal(rules.humanSeconds(84.877), '1 min 25 s');
  assert.equal(rules.humanSeconds(7205), '2 h 0 min 5 s');
  assert.equal(rules.humanSeconds(Number.NaN), '');
  assert.equal(rules.humanSeconds(-1), '');
});

test('close codes read as what they mean', () => {
  assert.equal(rules.closeMeaning(1000), 'normal closure');
  assert.equal(rules.closeMeaning(1001), 'going away');
  assert.equal(rules.closeMeaning(1006), 'connection lost');
  assert.equal(rules.closeMeaning(1009), 'message too big');
  assert.equal(rules.closeMeaning(4000), 'closed');
});

test('messages: bytes of UTF-8, the limit, the reserved heartbeat text, the frame limit', () => {
  assert.equal(rules.byteLength('abc'), 3);
  assert.equal(rules.byteLength('é'), 2);
  assert.equal(rules.byteLength('🙂'), 4);
  assert.equal(rules.messageProblem('hello', 8192), null);
  assert.equal(rules.messageProblem(' \n\t', 8192), 'Type a message first.');
  assert.equal(rules.messageProblem('ééé', 5), 'Too long: 6 bytes; the limit is 5 bytes.');
  assert.equal(rules.messageProblem('éé', 4), null, 'at the limit');
  assert.match(rules.messageProblem('ping', 8192), /reserved for the heartbeat/);
  assert.equal(rules.messageProblem(' ping', 8192), null);
  // Quotes double once JSON-escaped: under the message limit, over the frame's.
  assert.equal(rules.messageProblem('"'.repeat(20_000), 32_768), 'Too long once encoded: the frame would be over 32768 bytes.');
});

test('sign-in and members-only rooms, as far as the serving stack\'s /config.json tells', () => {
  const url = 'ws://127.0.0.1:8080/dev';
  const config = { websocket_url: url, sign_in: true, members_only_rooms: ['team-*', 'staff'], rooms_claim: 'rooms' };
  assert.equal(rules.signInRequired(config, url), true);
  assert.equal(rules.signInRequired({ ...config, sign_in: false }, url), false);
  assert.equal(rules.signInRequired(config, 'wss://elsewhere.example/dev'), null, 'another server');
  assert.equal(rules.signInRequired(null, url), null, 'a static host');

  assert.deepEqual(rules.membership(config, url, 'team-a', { rooms: ['team-*'] }), { membersOnly: true, member: true, named: ['team-*'] });
  assert.deepEqual(rules.membership(config, url, 'team-a', { rooms: 'staff, other' }), { membersOnly: true, member: false, named: ['staff', 'other'] });
  assert.deepEqual(rules.membership(config, url, 'lobby', {}), { membersOnly: false, member: false, named: [] });
  assert.equal(rules.membership(config, 'wss://elsewhere.example/dev', 'team-a', {}), null);
});

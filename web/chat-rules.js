// The chat's pure rules: what the server accepts (rooms, names, tokens,
// messages), how a socket's URL is built, and how times and close codes
// read. No DOM, no WebSocket, no clock of its own: the same in the page and
// in Node. A classic script (file:// refuses module scripts): in a page it
// is `Chat.rules`, in Node `require('./chat-rules.js')`.
(function () {
  'use strict';

  const DEFAULT_ROOM = 'lobby';
  const DEFAULT_MAX_MESSAGE_BYTES = 8192;
  // The tutorial client's heartbeat: the server never broadcasts this text.
  const LEGACY_HEARTBEAT = 'ping';
  // Every limit a client meets, as the local stack's /config.json says them
  // (`limits`, from handlers::limits; docs/protocol.md). These are the
  // fallback for a page served elsewhere (AWS has no /config.json); a test
  // in local/src/gateway/mod.rs compares them with the server's.
  const FALLBACK_LIMITS = Object.freeze({
    room_name_chars: 64,
    display_name_chars: 32,
    history_default_limit: 50,
    history_max_limit: 100,
    welcome_max_listed: 200,
    // API Gateway closes the connection with 1009 on a frame over 32 KB.
    max_frame_bytes: 32768,
    max_message_frame_bytes: 131072,
    moderation_reason_chars: 200,
    ban_minutes_max: 525600,
  });
  // The limits in force: the fallbacks, or the server's (`applyLimits`).
  const limits = { ...FALLBACK_LIMITS };

  // Takes the server's limits (its /config.json `limits`): each a positive
  // whole number, else the fallback stays.
  function applyLimits(given) {
    if (!isRecord(given)) return;
    for (const key of Object.keys(FALLBACK_LIMITS)) {
      if (Number.isInteger(given[key]) && given[key] > 0) limits[key] = given[key];
    }
  }

  const encoder = new TextEncoder();

  function byteLength(text) {
    return encoder.encode(text).length;
  }

  function str(value) {
    return typeof value === 'string' ? value : '';
  }

  function isRecord(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  // A display name from a frame, or '' for none (the server sends null).
  function nameOf(frame) {
    return typeof frame.name === 'string' && frame.name.trim() !== '' ? frame.name : '';
  }

  function validWebSocketUrl(text) {
    try {
      const url = new URL(text);
      return url.protocol === 'ws:' || url.protocol === 'wss:';
    } catch (_) {
      return false;
    }
  }

  function codePoint(char) {
    return `U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  }

  // A room name: 1 to 64 ASCII letters, digits, '-' and '_' (case matters),
  // as the server checks it. Surrounding spaces are dropped; an empty field
  // is the default room.
  function checkRoom(raw) {
    const room = raw.trim();
    if (room === '') return { ok: true, value: DEFAULT_ROOM };
    const chars = [...room];
    if (chars.length > limits.room_name_chars) {
      return { ok: false, why: `Room names are 1 to ${limits.room_name_chars} characters; this one has ${chars.length}.` };
    }
    const bad = chars.find((c) => !/^[A-Za-z0-9_-]$/.test(c));
    if (bad !== undefined) {
      const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(bad) ? `“${bad}”` : codePoint(bad);
      return { ok: false, why: `Room names use only letters A–Z and a–z, digits, - and _ (not ${shown}).` };
    }
    return { ok: true, value: room };
  }

  // A display name, as the server checks it (handlers/src/name.rs), in its
  // order: trimmed (Unicode White_Space, as Rust's str::trim), then no
  // control characters, none that reorder text, no U+FFFD (what undecodable
  // bytes become), none of the invisible ones, something besides joiners,
  // 1 to 32 characters. Optional: an empty field is no name.
  const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
  const REORDERS_TEXT = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
  // The zero-width joiner and non-joiner stay allowed (emoji and several
  // scripts need them), though never on their own.
  const INVISIBLE = /[\u00AD\u180E\u200B\u2060-\u2064\uFEFF]/u;
  const ONLY_JOINERS = /^[\p{White_Space}\u200C\u200D]+$/u;
  function checkName(raw) {
    const name = raw.replace(EDGE_SPACE, '');
    if (name === '') return { ok: true, value: '' };
    const refused = (why) => ({ ok: false, why: `Names ${why}.` });
    const control = /\p{Cc}/u.exec(name);
    if (control) return refused(`cannot contain control characters (${codePoint(control[0])})`);
    const reorder = REORDERS_TEXT.exec(name);
    if (reorder) return refused(`cannot contain characters that reorder text (${codePoint(reorder[0])})`);
    if (name.includes('\uFFFD')) return refused('cannot contain U+FFFD, the replacement character');
    const invisible = INVISIBLE.exec(name);
    if (invisible) return refused(`cannot contain invisible characters (${codePoint(invisible[0])})`);
    if (ONLY_JOINERS.test(name)) return refused('need at least one visible character');
    const length = [...name].length;
    if (length > limits.display_name_chars) return refused(`are 1 to ${limits.display_name_chars} characters once trimmed; this one has ${length}`);
    return { ok: true, value: name };
  }

  // A sign-in token as pasted: a leading `Bearer ` and any white space
  // (a token wrapped by a terminal) dropped, then shaped like a JSON Web
  // Token. Only the shape is checked here; the server checks the rest.
  // Optional: an empty field is no token. The reason never quotes it.
  const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
  function checkToken(raw) {
    const token = raw.replace(/^\s*bearer\s+/i, '').replace(/\s+/g, '');
    if (token === '') return { ok: true, value: '' };
    if (!JWT_SHAPE.test(token)) {
      return {
        ok: false,
        why: 'This is not a token: a sign-in token (JWT) is three parts of letters, digits, - and _ joined by dots.',
      };
    }
    return { ok: true, value: token };
  }

  // What a token says about itself (its payload, not verified: only to
  // explain a refusal), or null.
  function tokenClaims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const binary = atob(part + '='.repeat((4 - (part.length % 4)) % 4));
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return isRecord(claims) ? claims : null;
    } catch (_) {
      return null;
    }
  }

  // A chat message the server would take: the reason it would not, said
  // before sending, or null.
  function messageProblem(text, maxBytes) {
    if (text.trim() === '') return 'Type a message first.';
    const bytes = byteLength(text);
    if (bytes > maxBytes) return `Too long: ${bytes} bytes; the limit is ${maxBytes} bytes.`;
    if (text === LEGACY_HEARTBEAT) {
      // The server answers this exact text with a pong and broadcasts nothing.
      return 'A message of just “ping” is reserved for the heartbeat and would not be delivered.';
    }
    if (byteLength(JSON.stringify({ action: 'sendmessage', message: text })) > limits.max_frame_bytes) {
      return `Too long once encoded: the frame would be over ${limits.max_frame_bytes} bytes.`;
    }
    return null;
  }

  // The query parameters a socket's URL gets from the join fields.
  const JOIN_KEYS = ['room', 'name', 'token'];

  // The socket's URL: the chosen URL with `room`, and `name` or `token`,
  // set (percent encoded: a space is %20, never '+'). It holds the token:
  // it goes to `new WebSocket` and nowhere else.
  function socketUrl(base, room, name, token) {
    const url = new URL(base);
    const pairs = [...url.searchParams].filter(([key]) => !JOIN_KEYS.includes(key));
    pairs.push(['room', room]);
    if (name) pairs.push(['name', name]);
    if (token) pairs.push(['token', token]);
    url.search = pairs.map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`).join('&');
    return url.toString();
  }

  // A pasted WebSocket URL with ?room=, ?name= or ?token=: they belong in
  // their fields (and a token in no URL that is shown or remembered). The
  // URL without them, and each one found (null when absent).
  function splitJoinParams(text) {
    const url = new URL(text);
    const found = { url: text, room: null, name: null, token: null };
    if (!JOIN_KEYS.some((key) => url.searchParams.has(key))) return found;
    for (const key of JOIN_KEYS) {
      found[key] = url.searchParams.get(key);
      url.searchParams.delete(key);
    }
    found.url = url.href;
    return found;
  }

  // Whether the server at `url` requires sign-in: true or false when the
  // page was served by that server (`config` is its /config.json, which
  // says `sign_in`), null when that cannot be known (a static host, another
  // server's URL).
  function signInRequired(config, url) {
    if (!isRecord(config) || typeof config.sign_in !== 'boolean' || str(config.websocket_url) !== url) return null;
    return config.sign_in;
  }

  // Whether `room` is members-only on the server at `url` (from its
  // /config.json), whether the token's claims make one a member, and the
  // rooms they name; null when unknown.
  function membership(config, url, room, claims) {
    if (!isRecord(config) || !Array.isArray(config.members_only_rooms) || str(config.websocket_url) !== url) return null;
    const matches = (patterns) => patterns.some((pattern) => (String(pattern).endsWith('*')
      ? room.startsWith(String(pattern).slice(0, -1))
      : pattern === room));
    const claim = claims[str(config.rooms_claim) || 'rooms'];
    const named = Array.isArray(claim) ? claim.map(String) : typeof claim === 'string' ? claim.split(/[\s,]+/).filter(Boolean) : [];
    return { membersOnly: matches(config.members_only_rooms), member: matches(named), named };
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // 2026-11-28 00:13:36 UTC
  function utcDateTime(ms) {
    const iso = new Date(ms).toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
  }

  // 00:13:36 (UTC) from an RFC 3339 timestamp, or '' if it is not one.
  function utcTime(timestamp) {
    const ms = Date.parse(timestamp);
    if (Number.isNaN(ms)) return '';
    return new Date(ms).toISOString().slice(11, 19);
  }

  // Elapsed time as HH:MM:SS.
  function elapsed(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return `${pad(h)}:${pad(m)}:${pad(s)}`;
  }

  // 4.2 s, 3 min 7 s, 2 h 0 min 5 s; '' for what is not a duration.
  function humanSeconds(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '';
    if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
    const whole = Math.round(seconds);
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = whole % 60;
    return h > 0 ? `${h} h ${m} min ${s} s` : `${m} min ${s} s`;
  }

  function closeMeaning(code) {
    switch (code) {
      case 1000: return 'normal closure';
      case 1001: return 'going away';
      case 1003: return 'unsupported data';
      case 1005: return 'no status';
      case 1006: return 'connection lost';
      case 1008: return 'policy violation';
      case 1009: return 'message too big';
      case 1011: return 'server error';
      case 1012: return 'service restart';
      case 1013: return 'try again later';
      default: return 'closed';
    }
  }

  const rules = {
    DEFAULT_ROOM,
    DEFAULT_MAX_MESSAGE_BYTES,
    FALLBACK_LIMITS,
    limits,
    applyLimits,
    byteLength,
    str,
    isRecord,
    nameOf,
    validWebSocketUrl,
    checkRoom,
    checkName,
    checkToken,
    tokenClaims,
    messageProblem,
    socketUrl,
    splitJoinParams,
    signInRequired,
    membership,
    utcDateTime,
    utcTime,
    elapsed,
    humanSeconds,
    closeMeaning,
  };

  if (typeof module === 'object' && module.exports) module.exports = rules;
  else (globalThis.Chat = globalThis.Chat || {}).rules = rules;
}());

// The chat's browser client. Plain script, no build step, no dependencies.
//
// Everything a user or another user typed reaches the page through
// `textContent` only: nothing here parses HTML.
//
// Query parameters:
//   ?room=NAME           the room to join (a link to a room); the page keeps
//                        it up to date with history.replaceState
//   ?token=JWT           never kept: taken out of the address at once (into
//                        the Token field), so it is not left in the address
//                        bar, the history or a copied link
// and, for tests and debugging:
//   ?heartbeat=SECONDS   quiet time before a heartbeat (default: the server's
//                        /config.json `heartbeat_secs`, else 300)
//   ?max-lines=N         lines kept in the message log (default 500, at least 10)
(function () {
  'use strict';

  const DEFAULT_MAX_MESSAGE_BYTES = 8192;
  // API Gateway closes the connection with 1009 on a frame over 32 KB.
  const MAX_FRAME_BYTES = 32 * 1024;
  const RECONNECT_BASE_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  // A connection that stayed open this long resets the backoff.
  const STABLE_CONNECTION_MS = 10000;
  const CONFIG_TIMEOUT_MS = 3000;
  // The tutorial client's heartbeat: the server never broadcasts this text.
  const LEGACY_HEARTBEAT = 'ping';
  const TICK_MS = 250;
  // Rooms and names, checked as the server checks them (docs/protocol.md).
  const DEFAULT_ROOM = 'lobby';
  const ROOM_MAX_CHARS = 64;
  const NAME_MAX_CHARS = 32;
  // History: the server's default page; how long to wait for an answer; how
  // many pages a reconnect reads back to close the gap since the last one;
  // how long to wait for `welcome` before asking anyway.
  const HISTORY_PAGE = 50;
  const HISTORY_TIMEOUT_MS = 15000;
  const GAP_PAGES = 4;
  const WELCOME_WAIT_MS = 3000;
  // Scrolled this close to the top of the log, the next older page loads.
  const LOAD_OLDER_PX = 80;
  const STORAGE = {
    url: 'chat.websocketUrl',
    room: 'chat.room',
    name: 'chat.name',
    // The sign-in token: in sessionStorage (this tab, until it is closed),
    // or in localStorage when the user ticks "Remember".
    token: 'chat.token',
    rememberToken: 'chat.rememberToken',
    connectOnLoad: 'chat.connectOnLoad',
    autoDisconnect: 'chat.autoDisconnect',
    autoDisconnectSecs: 'chat.autoDisconnectSecs',
    // A moderator's ban from a room, as the `removed` frame told it (this
    // tab): `chat.ban.<room>` -> {"until": ISO time, "reason": text}.
    banPrefix: 'chat.ban.',
  };

  const params = new URLSearchParams(window.location.search);
  // A heartbeat goes only after this long without anything sent: API
  // Gateway closes a connection idle for 10 minutes, and every heartbeat is
  // two billed messages and a Lambda invocation (docs/web.md, "Heartbeat").
  // The local stack's /config.json says the server's value
  // (handlers::limits::HEARTBEAT_INTERVAL); this is the fallback.
  const DEFAULT_HEARTBEAT_SECS = 300;
  const HEARTBEAT_PARAM = numberParam('heartbeat', null, 0.1);
  // How often the page checks whether a heartbeat is due, at most: a tab in
  // the background may run it up to a minute late, well inside the 10.
  const HEARTBEAT_CHECK_MS = 15000;
  const MAX_LINES = Math.floor(numberParam('max-lines', 500, 10));
  // Entries the online list shows; the rest are counted ("and 12 more").
  const ONLINE_SHOWN = 200;

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $('app'),
    status: $('status'),
    countdown: $('status-countdown'),
    dot: $('status-dot'),
    connectForm: $('connect-form'),
    url: $('ws-url'),
    connect: $('connect'),
    disconnect: $('disconnect'),
    room: $('room'),
    roomError: $('room-error'),
    name: $('name'),
    nameError: $('name-error'),
    token: $('token'),
    tokenError: $('token-error'),
    rememberToken: $('remember-token'),
    connectError: $('connect-error'),
    autoDisconnect: $('auto-disconnect'),
    autoDisconnectSecs: $('auto-disconnect-secs'),
    autoDisconnectFact: $('auto-disconnect-fact'),
    autoDisconnectLeft: $('auto-disconnect-left'),
    connectedAt: $('connected-at'),
    duration: $('duration'),
    roomNow: $('room-now'),
    me: $('me'),
    scroller: $('log-scroller'),
    top: $('log-top'),
    topText: $('log-top-text'),
    loadOlder: $('load-older'),
    log: $('log'),
    online: $('online'),
    onlineHeading: $('online-heading'),
    onlineList: $('online-list'),
    onlineMore: $('online-more'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    counter: $('counter'),
    sendError: $('send-error'),
    moderationForm: $('moderation-form'),
    moderationWhat: $('moderation-what'),
    moderationMinutesLabel: $('moderation-minutes-label'),
    moderationMinutes: $('moderation-minutes'),
    moderationReason: $('moderation-reason'),
    moderationConfirm: $('moderation-confirm'),
    moderationCancel: $('moderation-cancel'),
  };

  const encoder = new TextEncoder();

  const state = {
    ws: null, // the socket being opened or open; null otherwise
    url: '', // the URL this session keeps connecting to (without room and name)
    room: '', // the room of the current socket
    name: '', // the display name of the current socket ('' for none)
    token: '', // the sign-in token of the current socket ('' for none); never shown
    nameAside: '', // the name field's text while a token names the user instead
    config: null, // /config.json of the server that served the page, if any
    wanted: false, // the user wants a connection: unexpected closes reconnect
    phase: 'disconnected', // disconnected | connecting | connected | reconnecting | error
    detail: '', // the status line's explanation
    openedAt: 0, // Date.now() when the current socket opened
    ownId: '', // this socket's connection id, from `welcome`
    ownIds: new Set(), // every connection id this page has had
    others: new Set(), // connection ids known to be someone else's
    pending: [], // texts sent on this socket before its `welcome`
    lastSent: '',
    attempt: 0, // reconnect attempts since the last stable connection
    reconnectTimer: 0,
    reconnectAt: 0,
    heartbeatTimer: 0,
    heartbeatMs: Math.round((HEARTBEAT_PARAM || DEFAULT_HEARTBEAT_SECS) * 1000),
    lastSentAt: 0, // Date.now() when this page last sent a frame
    welcomeTimer: 0,
    autoTimer: 0,
    autoAt: 0,
    maxBytes: DEFAULT_MAX_MESSAGE_BYTES,
    seen: new Set(), // presence and message keys already shown
    deleted: new Map(), // message id -> who deleted it, from `deleted` frames
    // Who is in the room, for this socket: from its `welcome`, kept current
    // by `presence` frames.
    online: newOnline(),
    pings: 0,
    pongs: 0,
    reconnects: 0,
    historyRequests: 0,
    // What the log shows of its room's history.
    hist: newHistory(''),
    // The current socket's part of the log: its marker and the top of the
    // history shown above the marker.
    segment: null,
    // This socket's welcome said it may remove, ban and delete here.
    moderator: false,
    // The remove or ban being confirmed: {action, id, name}, or null.
    moderating: null,
    // Why the server took this page out of its room (`removed`), or ''.
    removedWhy: '',
  };

  function newOnline() {
    return {
      known: false, // a `welcome` with an `online` list came on this socket
      members: new Map(), // connection id -> display name ('' for none)
      unlisted: 0, // counted by the welcome's `online_count` but not listed
      gone: new Set(), // connection ids seen leaving, so a repeat never re-adds
    };
  }

  function newHistory(room) {
    return {
      room, // the room the log shows
      started: false, // a first page arrived: `older` is known
      older: null, // cursor of the next older page; null at the beginning
      trimmed: false, // lines were dropped from the top (the log is bounded)
      error: '', // why the last older page failed
      unsupported: false, // the server does not know the `history` action
      request: null, // the one history request in flight
    };
  }

  // ---------------------------------------------------------------- helpers

  function numberParam(name, fallback, min) {
    const raw = params.get(name);
    if (raw === null || raw.trim() === '') return fallback;
    const value = Number(raw);
    return Number.isFinite(value) && value >= min ? value : fallback;
  }

  // localStorage (kept), or sessionStorage (this tab only) for `session`.
  function store(session) {
    try {
      return session ? window.sessionStorage : window.localStorage;
    } catch (_) {
      return null; // storage disabled (privacy mode, some file:// pages)
    }
  }
  const storage = {
    get(key, session = false) {
      try {
        return store(session).getItem(key);
      } catch (_) {
        return null;
      }
    },
    set(key, value, session = false) {
      try {
        store(session).setItem(key, value);
      } catch (_) {
        /* nothing to remember with */
      }
    },
    remove(key, session = false) {
      try {
        store(session).removeItem(key);
      } catch (_) {
        /* nothing was remembered */
      }
    },
  };

  function byteLength(text) {
    return encoder.encode(text).length;
  }

  function str(value) {
    return typeof value === 'string' ? value : '';
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
    if (chars.length > ROOM_MAX_CHARS) {
      return { ok: false, why: `Room names are 1 to ${ROOM_MAX_CHARS} characters; this one has ${chars.length}.` };
    }
    const bad = chars.find((c) => !/^[A-Za-z0-9_-]$/.test(c));
    if (bad !== undefined) {
      const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(bad) ? `“${bad}”` : codePoint(bad);
      return { ok: false, why: `Room names use only letters A–Z and a–z, digits, - and _ (not ${shown}).` };
    }
    return { ok: true, value: room };
  }

  // A display name, as the server checks it: trimmed (Unicode White_Space,
  // as Rust's str::trim), then no control characters, no characters that
  // reorder text, 1 to 32 characters. Optional: an empty field is no name.
  const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
  const REORDERS_TEXT = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
  function checkName(raw) {
    const name = raw.replace(EDGE_SPACE, '');
    if (name === '') return { ok: true, value: '' };
    const control = /\p{Cc}/u.exec(name);
    if (control) {
      return { ok: false, why: `Names cannot contain control characters (${codePoint(control[0])}).` };
    }
    const reorder = REORDERS_TEXT.exec(name);
    if (reorder) {
      return { ok: false, why: `Names cannot contain characters that reorder text (${codePoint(reorder[0])}).` };
    }
    const length = [...name].length;
    if (length > NAME_MAX_CHARS) {
      return { ok: false, why: `Names are 1 to ${NAME_MAX_CHARS} characters once trimmed; this one has ${length}.` };
    }
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
      const binary = window.atob(part + '='.repeat((4 - (part.length % 4)) % 4));
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
    } catch (_) {
      return null;
    }
  }

  // The socket's URL: the chosen URL with `room`, and `name` or `token`,
  // set (percent encoded: a space is %20, never '+'). It holds the token:
  // it goes to `new WebSocket` and nowhere else.
  function socketUrl(base, room, name, token) {
    const url = new URL(base);
    const pairs = [...url.searchParams].filter(([key]) => key !== 'room' && key !== 'name' && key !== 'token');
    pairs.push(['room', room]);
    if (name) pairs.push(['name', name]);
    if (token) pairs.push(['token', token]);
    url.search = pairs.map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`).join('&');
    return url.toString();
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

  // Elapsed time as H:MM:SS, always from the clock.
  function elapsed(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return `${pad(h)}:${pad(m)}:${pad(s)}`;
  }

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

  function isOpen() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
  }

  function sendFrame(object) {
    if (!isOpen()) return false;
    state.ws.send(JSON.stringify(object));
    state.lastSentAt = Date.now();
    return true;
  }

  // A display name from a frame, or '' for none (the server sends null).
  function nameOf(frame) {
    return typeof frame.name === 'string' && frame.name.trim() !== '' ? frame.name : '';
  }

  // -------------------------------------------------------------- rendering

  function setPhase(phase, detail) {
    state.phase = phase;
    state.detail = detail || '';
    render();
  }

  // The status line in two parts: what is announced to screen readers
  // (it changes with the phase) and a countdown that is only shown (it
  // changes every second).
  function statusText() {
    switch (state.phase) {
      case 'connecting':
        return [state.attempt > 0 ? `Connecting (attempt ${state.attempt + 1})…` : 'Connecting…', ''];
      case 'connected':
        return ['Connected', ''];
      case 'reconnecting':
      case 'error': {
        let what;
        if (state.phase === 'error') what = state.detail ? `Error: ${state.detail}` : 'Error';
        else what = state.detail ? state.detail[0].toUpperCase() + state.detail.slice(1) : 'Disconnected';
        if (!state.reconnectTimer) return [what, ''];
        const secs = Math.max(0, Math.ceil((state.reconnectAt - Date.now()) / 1000));
        return [`${what} — reconnecting`, ` in ${secs} s…`];
      }
      default:
        return [state.detail ? `Disconnected: ${state.detail}` : 'Disconnected', ''];
    }
  }

  function active() {
    return state.ws !== null || state.reconnectTimer !== 0;
  }

  function render() {
    const now = Date.now();
    const [announced, countdown] = statusText();
    // Rewritten only when they change, so screen readers hear each change once.
    if (ui.status.textContent !== announced) ui.status.textContent = announced;
    if (ui.countdown.textContent !== countdown) ui.countdown.textContent = countdown;
    ui.app.dataset.state = state.phase;
    ui.dot.className = `dot ${state.phase}`;

    const busy = active();
    ui.connect.disabled = busy;
    ui.disconnect.disabled = !busy;
    ui.url.readOnly = busy;

    if (state.openedAt) {
      ui.connectedAt.textContent = utcDateTime(state.openedAt);
      ui.duration.textContent = elapsed(now - state.openedAt);
    } else {
      ui.connectedAt.textContent = '—';
      ui.duration.textContent = '—';
    }
    const room = busy && state.room ? `#${state.room}` : '—';
    if (ui.roomNow.textContent !== room) ui.roomNow.textContent = room;
    ui.me.textContent = state.ownId || '—';

    if (state.autoTimer) {
      ui.autoDisconnectFact.hidden = false;
      ui.autoDisconnectLeft.textContent = `in ${Math.max(0, Math.ceil((state.autoAt - now) / 1000))} s`;
    } else {
      ui.autoDisconnectFact.hidden = true;
    }
    renderComposer();
    renderTop();
  }

  function renderComposer() {
    const text = ui.message.value;
    const bytes = byteLength(text);
    const over = bytes - state.maxBytes;
    ui.counter.textContent = over > 0
      ? `${bytes} / ${state.maxBytes} bytes — ${over} over the limit`
      : `${bytes} / ${state.maxBytes} bytes`;
    ui.counter.classList.toggle('over', over > 0);
    ui.counter.classList.toggle('near', over <= 0 && bytes >= state.maxBytes * 0.9);
    ui.message.setAttribute('aria-invalid', over > 0 ? 'true' : 'false');
    ui.send.disabled = !isOpen() || over > 0 || text.trim() === '';
  }

  // The line above the log: how far back the log reaches, and a button for
  // the next older page (scrolling to the top presses it).
  function renderTop() {
    const h = state.hist;
    let mode = '';
    let text = '';
    let button = '';
    if (h.room && h.started) {
      if (h.request && h.request.kind === 'older') {
        mode = 'loading';
        text = 'Loading earlier messages…';
      } else if (h.trimmed) {
        mode = 'trimmed';
        text = `Earlier lines are no longer shown: this page keeps the last ${MAX_LINES} lines.`;
      } else if (h.older === null) {
        mode = 'beginning';
        text = `Beginning of #${h.room}`;
      } else if (ui.log.childElementCount >= MAX_LINES) {
        mode = 'full';
        text = `This page keeps at most ${MAX_LINES} lines; earlier messages are not loaded.`;
      } else if (h.error) {
        mode = 'error';
        text = `Could not load earlier messages: ${h.error}`;
        button = 'Try again';
      } else {
        mode = 'more';
        text = isOpen() ? 'Earlier messages:' : 'Earlier messages (connect to load them):';
        button = 'Load earlier messages';
      }
    }
    if (ui.top.dataset.state !== mode) ui.top.dataset.state = mode;
    ui.top.hidden = mode === '';
    if (ui.topText.textContent !== text) ui.topText.textContent = text;
    ui.loadOlder.hidden = button === '';
    if (button && ui.loadOlder.textContent !== button) ui.loadOlder.textContent = button;
    ui.loadOlder.disabled = !isOpen() || h.request !== null;
  }

  // The log follows new lines while the reader is at its end, and stays put
  // while they scroll back.
  let following = true;

  function nearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  function followEnd() {
    if (following) ui.scroller.scrollTop = ui.scroller.scrollHeight;
  }

  // Runs `change` (which adds or removes lines) without moving what the
  // reader is looking at; at the end of the log, stays at the end.
  function keepView(change) {
    if (following) {
      change();
      followEnd();
      return;
    }
    const top = ui.scroller.getBoundingClientRect().top;
    let anchor = null;
    for (const li of ui.log.children) {
      if (li.getBoundingClientRect().bottom > top) {
        anchor = li;
        break;
      }
    }
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (anchor && anchor.isConnected) {
      ui.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
    }
  }

  // The log is bounded: the oldest lines go first. Once they have, older
  // pages are no longer loaded (what is above is gone).
  function trim() {
    let dropped = false;
    while (ui.log.childElementCount > MAX_LINES) {
      ui.log.firstElementChild.remove();
      dropped = true;
    }
    if (dropped && !state.hist.trimmed) {
      state.hist.trimmed = true;
      renderTop();
    }
  }

  function append(li) {
    keepView(() => {
      ui.log.appendChild(li);
      trim();
    });
  }

  function addSystem(text, kind) {
    const li = document.createElement('li');
    li.className = kind ? `system ${kind}` : 'system';
    li.textContent = text;
    append(li);
    return li;
  }

  // "Ada (L0SM9cOFvHcCIhw=)" or "L0SM9cOFvHcCIhw=", as nodes: a name is
  // isolated (<bdi>) so it cannot change how the text around it reads.
  function whoNodes(id, name) {
    if (!name) return [document.createTextNode(id)];
    const bdi = document.createElement('bdi');
    bdi.className = 'name';
    bdi.textContent = name;
    return [bdi, document.createTextNode(` (${id})`)];
  }

  function addPresence(prefix, id, name, suffix) {
    const li = document.createElement('li');
    li.className = 'system presence';
    li.append(prefix, ...whoNodes(id, name), suffix);
    append(li);
  }

  function markLine(li, own) {
    const sender = li.dataset.sender || '';
    const name = li.dataset.name || '';
    li.classList.toggle('own', own);
    li.classList.toggle('other', !own);
    const who = li.querySelector('.who');
    const id = li.querySelector('.sender-id');
    // Own lines are recognised by connection id, never by name.
    who.textContent = own ? 'You' : name || sender || 'unknown sender';
    who.classList.toggle('named', !own && name !== '');
    const shownId = own || name ? sender : '';
    id.textContent = shownId;
    id.hidden = shownId === '';
    markDeletable(li, own);
  }

  function messageLine(frame, own, origin) {
    const li = document.createElement('li');
    li.className = origin === 'history' ? 'msg history' : 'msg';
    li.dataset.sender = str(frame.connection_id);
    const name = nameOf(frame);
    if (name) li.dataset.name = name;
    if (frame.message_id) li.dataset.messageId = str(frame.message_id);

    const meta = document.createElement('p');
    meta.className = 'meta';
    const who = document.createElement('bdi');
    who.className = 'who';
    const id = document.createElement('span');
    id.className = 'sender-id';
    meta.append(who, id);
    const time = utcTime(str(frame.timestamp));
    if (time) {
      const el = document.createElement('time');
      el.dateTime = str(frame.timestamp);
      el.title = `${str(frame.timestamp)} (UTC)`;
      el.textContent = time;
      meta.append(el);
    }

    const body = document.createElement('p');
    body.className = 'text';
    body.textContent = typeof frame.text === 'string' ? frame.text : str(frame.message);

    li.append(meta, body);
    if (isRecord(frame.deleted) || state.deleted.has(str(frame.message_id))) {
      markDeleted(li, isRecord(frame.deleted) ? str(frame.deleted.by) : state.deleted.get(str(frame.message_id)));
    }
    markLine(li, own);
    return li;
  }

  // A deleted message: its text gone, who deleted it said instead; no
  // delete button.
  function markDeleted(li, by) {
    li.dataset.deleted = by || 'unknown';
    li.classList.add('deleted');
    const body = li.querySelector('.text');
    if (body) body.textContent = by === 'author' ? 'Message deleted by its author' : 'Message deleted by a moderator';
    const button = li.querySelector('.delete-message');
    if (button) button.remove();
  }

  // Own lines, and every line for a moderator, get a Delete button.
  function markDeletable(li, own) {
    const may = (own || state.moderator) && Boolean(li.dataset.messageId) && !li.dataset.deleted;
    let button = li.querySelector('.delete-message');
    if (may && !button) {
      button = document.createElement('button');
      button.type = 'button';
      button.className = 'delete-message link-button';
      button.textContent = 'Delete';
      button.setAttribute('aria-label', own ? 'Delete your message' : 'Delete this message (moderator)');
      li.querySelector('.meta').append(button);
    } else if (!may && button) {
      button.remove();
    }
  }

  function addMessage(frame, own) {
    append(messageLine(frame, own, 'live'));
  }

  function remarkOwnLines() {
    for (const li of ui.log.querySelectorAll('li.msg')) {
      markLine(li, state.ownIds.has(li.dataset.sender || ''));
    }
  }

  function showSendError(text) {
    ui.sendError.textContent = text;
  }

  function clearSendError() {
    ui.sendError.textContent = '';
  }

  function showConnectError(text) {
    ui.connectError.textContent = text;
  }

  function setMaxBytes(limit) {
    if (Number.isInteger(limit) && limit > 0) {
      state.maxBytes = limit;
      renderComposer();
    }
  }

  function counters() {
    ui.app.dataset.pings = String(state.pings);
    ui.app.dataset.pongs = String(state.pongs);
    ui.app.dataset.reconnects = String(state.reconnects);
    ui.app.dataset.connectionId = state.ownId;
    ui.app.dataset.room = state.room;
    ui.app.dataset.historyRequests = String(state.historyRequests);
  }

  // Presence and messages are delivered at least once: show each once.
  function firstTime(key) {
    if (state.seen.has(key)) return false;
    remember(key);
    return true;
  }

  function remember(key) {
    state.seen.add(key);
    if (state.seen.size > 5000) {
      // Sets iterate in insertion order: forget the oldest half.
      let drop = 2500;
      for (const old of state.seen) {
        state.seen.delete(old);
        if (--drop === 0) break;
      }
    }
  }

  // ------------------------------------------------ room, name and token

  function showFieldError(input, output, why) {
    output.textContent = why || '';
    input.setAttribute('aria-invalid', why ? 'true' : 'false');
  }

  // While a token is given the server takes the name from it and ignores
  // `?name=`: the name field says so (and is not sent); what was typed in
  // it is kept aside and comes back when the token goes.
  function syncNameField() {
    const fromToken = ui.token.value.trim() !== '';
    if (fromToken === ui.name.disabled) return;
    if (fromToken) {
      state.nameAside = ui.name.value;
      ui.name.value = '';
      ui.name.placeholder = 'from your token';
      ui.name.disabled = true;
      showFieldError(ui.name, ui.nameError, '');
    } else {
      ui.name.value = state.nameAside;
      ui.name.placeholder = 'optional';
      ui.name.disabled = false;
    }
  }

  // The name the user typed, also while the field says "from your token".
  function typedName() {
    return ui.name.disabled ? state.nameAside : ui.name.value;
  }

  function setTypedName(name) {
    if (ui.name.disabled) state.nameAside = name;
    else ui.name.value = name;
  }

  // Checks the fields and says what is wrong next to each; null if any is.
  // With a token, no name is sent (the token's is used).
  function readJoin() {
    syncNameField();
    const room = checkRoom(ui.room.value);
    const token = checkToken(ui.token.value);
    const name = checkName(typedName());
    showFieldError(ui.room, ui.roomError, room.ok ? '' : room.why);
    showFieldError(ui.token, ui.tokenError, token.ok ? '' : token.why);
    const fromToken = token.ok && token.value !== '';
    showFieldError(ui.name, ui.nameError, name.ok || ui.name.disabled ? '' : name.why);
    if (!room.ok || !token.ok) return null;
    if (!name.ok && !fromToken) return null;
    return {
      room: room.value,
      name: fromToken ? '' : name.value,
      token: token.value,
      typedName: name.ok ? name.value : null,
    };
  }

  // The token is kept for this tab (sessionStorage), or in this browser
  // (localStorage) when "Remember" is ticked; never in both.
  function rememberToken(token) {
    const keep = ui.rememberToken.checked;
    storage.set(STORAGE.rememberToken, keep ? 'true' : 'false');
    if (token) storage.set(STORAGE.token, token, !keep);
    else storage.remove(STORAGE.token, !keep);
    storage.remove(STORAGE.token, keep);
  }

  // The page address links to the room: ?room=NAME, other parameters kept.
  function reflectRoom(room) {
    document.title = `#${room} · Serverless chat`;
    try {
      const url = new URL(window.location.href);
      if (url.searchParams.get('room') === room) return;
      url.searchParams.set('room', room);
      window.history.replaceState(window.history.state, '', url.href);
    } catch (_) {
      /* some file:// pages cannot rewrite their address */
    }
  }

  function rememberJoin(join) {
    storage.set(STORAGE.room, join.room);
    if (join.typedName !== null) storage.set(STORAGE.name, join.typedName);
    rememberToken(join.token);
    reflectRoom(join.room);
  }

  // A room, name or token change: remembered, and while connected (or
  // trying to) the socket is replaced by one in the new room, under the new
  // name or with the new token.
  function joinChanged() {
    const join = readJoin();
    if (!join) return; // said next to the field; the current socket stays
    rememberJoin(join);
    if (!active() || (join.room === state.room && join.name === state.name && join.token === state.token)) return;
    const roomChanged = join.room !== state.room;
    const tokenChanged = join.token !== state.token;
    window.clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    const ws = state.ws;
    teardownSocket();
    if (ws) ws.close(1000, roomChanged ? 'Changing room' : tokenChanged ? 'Changing token' : 'Changing name');
    showConnectError('');
    if (roomChanged) resetLog(join.room);
    else if (tokenChanged) addSystem(join.token ? 'Reconnecting with your token…' : 'Reconnecting without a token…');
    else addSystem(join.name ? `Reconnecting as “${join.name}”…` : 'Reconnecting without a name…');
    state.room = join.room;
    state.name = join.name;
    state.token = join.token;
    state.attempt = 0;
    open();
  }

  // A new room: a new log.
  function resetLog(room) {
    clearHistoryRequest();
    ui.log.replaceChildren();
    state.seen.clear();
    state.others.clear();
    state.segment = null;
    state.hist = newHistory(room);
    following = true;
    renderTop();
  }

  // --------------------------------------------------------------- history
  //
  // Each socket gets a marker line when it opens. Its first history page
  // goes above the marker, live messages below it; a message already shown
  // (delivered live while the page loaded, or by an earlier socket) is
  // skipped by `message_id`. The first socket's page starts the log: older
  // pages go on top as the reader scrolls up, until the cursor is null. A
  // later socket (a reconnect) reads back until it meets a message it has
  // shown, to fill in what was said while it was away.

  function beginSegment() {
    const marker = document.createElement('li');
    marker.className = 'marker loading';
    marker.dataset.marker = 'loading';
    marker.textContent = 'Loading earlier messages…';
    append(marker);
    state.segment = {
      marker,
      top: marker, // history of this socket goes above this line
      reconnect: state.hist.started,
      asked: false,
      pages: 0,
      missed: 0,
    };
  }

  function setMarker(segment, kind, text) {
    segment.marker.className = `marker ${kind}`;
    segment.marker.dataset.marker = kind;
    segment.marker.textContent = text;
  }

  function clearHistoryRequest() {
    const request = state.hist.request;
    if (request) window.clearTimeout(request.timer);
    state.hist.request = null;
  }

  function requestHistory(kind, before, segment) {
    const h = state.hist;
    if (h.request || h.unsupported || !isOpen()) return false;
    // Older pages only fill the room the bounded log has left; the first
    // page takes what fits; a reconnect's pages are newer than everything
    // shown, so they may push the oldest lines out.
    const room = MAX_LINES - ui.log.childElementCount;
    let limit = Math.min(HISTORY_PAGE, MAX_LINES);
    if (kind === 'older') limit = Math.min(HISTORY_PAGE, room);
    else if (segment && !segment.reconnect) limit = Math.min(HISTORY_PAGE, Math.max(1, room));
    if (limit < 1) return false;
    const frame = { action: 'history', limit };
    if (before) frame.before = before;
    if (!sendFrame(frame)) return false;
    h.request = {
      kind,
      segment,
      ws: state.ws,
      timer: window.setTimeout(() => historyFailed('no answer from the server'), HISTORY_TIMEOUT_MS),
    };
    state.historyRequests += 1;
    counters();
    renderTop();
    return true;
  }

  // After `welcome` (or, should it be slow, a little while after the socket
  // opened): the latest page.
  function askLatest() {
    window.clearTimeout(state.welcomeTimer);
    state.welcomeTimer = 0;
    const segment = state.segment;
    if (!segment || segment.asked || !isOpen()) return;
    if (state.hist.unsupported) {
      setMarker(segment, 'none', 'This server keeps no history');
      segment.asked = true;
      return;
    }
    segment.asked = requestHistory('latest', null, segment);
  }

  function loadOlder() {
    const h = state.hist;
    if (!h.started || h.trimmed || h.older === null || h.request || !isOpen()) return;
    h.error = '';
    if (!requestHistory('older', h.older, null)) renderTop();
  }

  // Scrolled (or sized) so that the top of the log shows: the next page.
  function maybeLoadOlder() {
    if (ui.scroller.scrollTop <= LOAD_OLDER_PX && !state.hist.error) loadOlder();
  }

  function isChatFrame(item) {
    return item !== null && typeof item === 'object' && !Array.isArray(item)
      && (item.type === 'message' || item.type === undefined);
  }

  function historyLines(chronological) {
    const lines = [];
    for (const frame of chronological) {
      const id = str(frame.message_id);
      if (id) remember(`message:${id}`);
      const sender = str(frame.connection_id);
      lines.push(messageLine(frame, sender !== '' && state.ownIds.has(sender), 'history'));
    }
    return lines;
  }

  function onHistory(frame) {
    const h = state.hist;
    const request = h.request;
    if (!request || request.ws !== state.ws) return; // not asked for: nothing to place it by
    clearHistoryRequest();
    if (typeof frame.room === 'string' && frame.room !== h.room) return; // never another room's
    const page = Array.isArray(frame.messages) ? frame.messages.filter(isChatFrame) : [];
    const cursor = typeof frame.cursor === 'string' && frame.cursor !== '' ? frame.cursor : null;
    // Newest first on the wire; shown oldest first.
    const chronological = page.slice().reverse();
    let overlap = false;
    const fresh = chronological.filter((m) => {
      const id = str(m.message_id);
      if (id && state.seen.has(`message:${id}`)) {
        overlap = true;
        return false;
      }
      return true;
    });

    if (request.kind === 'older') {
      if (h.trimmed) return; // the top it belonged above is gone
      keepView(() => {
        const first = ui.log.firstChild;
        for (const li of historyLines(fresh)) ui.log.insertBefore(li, first);
      });
      h.older = cursor;
      renderTop();
      fillView();
      return;
    }

    const segment = request.segment;
    if (segment !== state.segment) return;
    segment.pages += 1;
    if (segment.top.parentNode !== ui.log) {
      // The bounded log already dropped the place this page belonged.
      h.trimmed = true;
    } else if (fresh.length > 0) {
      keepView(() => {
        const lines = historyLines(fresh);
        for (const li of lines) ui.log.insertBefore(li, segment.top);
        segment.top = lines[0];
        trim();
      });
      segment.missed += fresh.length;
    }

    if (!segment.reconnect) {
      // The log's first page: older pages continue from its cursor.
      h.started = true;
      h.older = cursor;
      if (page.length === 0) setMarker(segment, 'empty', `No earlier messages in #${h.room}`);
      else setMarker(segment, 'joined', 'New since you joined');
      renderTop();
      fillView();
      return;
    }
    // A reconnect: read back until a message already shown, or the beginning.
    if (!overlap && cursor !== null) {
      if (segment.pages < GAP_PAGES && !h.trimmed && requestHistory('gap', cursor, segment)) return;
      if (segment.top.parentNode === ui.log) {
        const li = document.createElement('li');
        li.className = 'system warn';
        li.textContent = 'More was said while you were away than is shown here.';
        keepView(() => {
          ui.log.insertBefore(li, segment.top);
          segment.top = li;
          trim();
        });
      }
    }
    if (segment.missed > 0) setMarker(segment, 'reconnected', 'New since you reconnected');
    else setMarker(segment, 'nothing-missed', 'Nothing missed while you were away');
    renderTop();
  }

  // A log that does not fill its box has no scrolling to ask for more with.
  function fillView() {
    if (ui.scroller.scrollHeight <= ui.scroller.clientHeight + LOAD_OLDER_PX) maybeLoadOlder();
  }

  function historyFailed(why) {
    const h = state.hist;
    const request = h.request;
    if (!request) return;
    clearHistoryRequest();
    if (request.kind === 'older') {
      h.error = why;
    } else if (request.segment && request.segment === state.segment) {
      setMarker(request.segment, 'failed', `Earlier messages could not be loaded: ${why}`);
    }
    renderTop();
  }

  // Is this `error` frame the answer to the history request in flight?
  function historyError(frame) {
    const request = state.hist.request;
    if (!request) return false;
    const code = str(frame.code);
    const message = str(frame.message);
    if (code === 'unknown_action') {
      // A server without the `history` action (the tutorial's own) names
      // the actions it has; an unknown action error that lists `history`
      // answers something else.
      const valid = Array.isArray(frame.valid_actions) ? frame.valid_actions : [];
      if (valid.length === 0 || valid.includes('history')) return false;
      state.hist.unsupported = true;
      const { segment } = request;
      clearHistoryRequest();
      if (segment && segment === state.segment) setMarker(segment, 'none', 'This server keeps no history');
      renderTop();
      return true;
    }
    const refusedPage = code === 'rate_limited' && frame.action === 'history';
    if (refusedPage || code === 'invalid_cursor' || code === 'invalid_limit' || (code === 'internal' && /history/i.test(message))) {
      historyFailed(message || code);
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------ connection

  function connect(url) {
    if (active()) {
      // Already connected or connecting: never a second socket.
      return;
    }
    url = url.trim();
    if (!validWebSocketUrl(url)) {
      setPhase('error', 'enter a ws:// or wss:// URL');
      ui.url.focus();
      return;
    }
    // A pasted URL with ?room=, ?name= or ?token=: they belong in their
    // fields (and a token in no URL that is shown or remembered).
    const parsed = new URL(url);
    if (['room', 'name', 'token'].some((key) => parsed.searchParams.has(key))) {
      if (parsed.searchParams.has('room')) ui.room.value = parsed.searchParams.get('room');
      if (parsed.searchParams.has('name')) setTypedName(parsed.searchParams.get('name'));
      if (parsed.searchParams.has('token')) ui.token.value = parsed.searchParams.get('token');
      parsed.searchParams.delete('room');
      parsed.searchParams.delete('name');
      parsed.searchParams.delete('token');
      url = parsed.href;
    }
    ui.url.value = url;
    const join = readJoin();
    if (!join) {
      const [field, what] = [
        [ui.room, 'check the room name'],
        [ui.token, 'check your token'],
        [ui.name, 'check your name'],
      ].find(([input]) => input.getAttribute('aria-invalid') === 'true');
      setPhase('error', what);
      field.focus();
      return;
    }
    storage.set(STORAGE.url, url);
    storage.set(STORAGE.connectOnLoad, 'true');
    rememberJoin(join);
    if (join.room !== state.hist.room) resetLog(join.room);
    state.url = url;
    state.room = join.room;
    state.name = join.name;
    state.token = join.token;
    state.wanted = true;
    state.attempt = 0;
    open();
  }

  function open() {
    let ws;
    state.removedWhy = '';
    delete ui.app.dataset.removed;
    const url = socketUrl(state.url, state.room, state.name, state.token);
    try {
      ws = new WebSocket(url);
    } catch (error) {
      // Bad URL, or ws:// from an https:// page. The browser's message may
      // quote the URL, which holds the token: never shown with it.
      state.wanted = false;
      let why = error && error.message ? error.message : 'cannot open this URL';
      if (state.token) why = why.split(url).join(state.url).split(state.token).join('…');
      setPhase('error', why);
      return;
    }
    state.ws = ws;
    counters();
    setPhase('connecting');
    ws.addEventListener('open', () => {
      if (ws === state.ws) onOpen();
    });
    ws.addEventListener('message', (event) => {
      if (ws === state.ws) onFrame(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws === state.ws) onClose(event);
    });
  }

  function onOpen() {
    state.openedAt = Date.now();
    state.ownId = '';
    state.pending = [];
    ui.app.dataset.openedAt = String(state.openedAt);
    showConnectError('');
    beginSegment();
    addSystem(`Connected to #${state.room} (${state.url}) at ${utcDateTime(state.openedAt)}.`);
    startHeartbeat();
    state.welcomeTimer = window.setTimeout(askLatest, WELCOME_WAIT_MS);
    if (ui.autoDisconnect.checked) armAutoDisconnect();
    counters();
    setPhase('connected');
    if (document.activeElement === ui.connect || document.activeElement === document.body) {
      ui.message.focus();
    }
  }

  function onClose(event) {
    const openFor = state.openedAt ? Date.now() - state.openedAt : 0;
    const wasOpen = state.openedAt !== 0;
    teardownSocket();
    ui.app.dataset.lastClose = String(event.code);

    const meaning = closeMeaning(event.code);
    const why = wasOpen ? `${event.code} ${meaning}` : String(event.code);
    const reason = event.reason && event.reason.toLowerCase() !== meaning ? `, “${event.reason}”` : '';
    if (event.code === 1009) {
      showSendError('The server closed the connection because a message was too big (1009).');
    }
    if (!wasOpen) showConnectError(refusal());
    if (state.removedWhy) {
      setPhase('disconnected', 'removed by a moderator');
      return;
    }
    if (!state.wanted) {
      setPhase('disconnected', `closed (${why}${reason})`);
      return;
    }
    if (wasOpen && openFor >= STABLE_CONNECTION_MS) state.attempt = 0;
    const failed = !wasOpen || event.code === 1006 || event.code === 1009 || event.code === 1011;
    const detail = wasOpen ? `connection closed (${why})` : 'connection refused or server unreachable';
    const delay = scheduleReconnect();
    const what = wasOpen ? `Connection closed (${why}${reason})` : `Could not connect (${why}${reason}): refused or unreachable`;
    addSystem(`${what}. Reconnecting in ${Math.ceil(delay / 1000)} s…`, 'warn');
    setPhase(failed ? 'error' : 'reconnecting', detail);
  }

  // Whether the server at `url` requires sign-in: true or false when the
  // page was served by that server (its /config.json says `sign_in`), null
  // when the page cannot know (a static host, another server's URL).
  function signInRequired(url) {
    const config = state.config;
    if (!config || typeof config.sign_in !== 'boolean' || str(config.websocket_url) !== url) return null;
    return config.sign_in;
  }

  // A handshake the server answered with an error (a bad room or name, no
  // token or a refused one) and one that never reached a server look the
  // same to a page: a close before `open`, code 1006, no reason. What the
  // page can say: what it sent, and what to check.
  function refusal() {
    const refused = (what) => `The server refused the connection to #${state.room}${what}, or could not be reached `
      + '(the browser is not told which, or why).';
    const server = `that the server is running at ${state.url}.`;
    if (state.token) {
      const claims = tokenClaims(state.token) || {};
      const ban = rememberedBan(state.room);
      if (ban) {
        const reason = ban.reason ? ` Reason: ${ban.reason}` : '';
        return `A moderator banned you from #${state.room} until ${utcDateTime(Date.parse(ban.until))}.${reason}`;
      }
      const rooms = membership(state.room, claims);
      if (rooms && rooms.membersOnly && !rooms.member) {
        const named = rooms.named.length ? ` (it names ${rooms.named.join(', ')})` : '';
        return `#${state.room} is members-only, and your sign-in does not make you a member${named}. `
          + 'Choose another room, or ask for a token that names this one.';
      }
      const now = Date.now() / 1000;
      let check = 'it may have expired, or be meant for another server';
      if (Number.isFinite(claims.exp) && claims.exp <= now) {
        check = `it expired at ${utcDateTime(claims.exp * 1000)} (by this computer’s clock); get a new one`;
      } else if (Number.isFinite(claims.nbf) && claims.nbf > now) {
        check = `it is not valid until ${utcDateTime(claims.nbf * 1000)} (by this computer’s clock)`;
      }
      return `${refused(' with your token')} Check your token: ${check}. Check also the room `
        + `(it may be members-only, or a moderator may have banned you from it), and ${server}`;
    }
    const as = state.name ? ` as “${state.name}”` : '';
    const required = signInRequired(state.url);
    if (required) {
      return `${refused(as)} This chat requires sign-in and no token was given: `
        + `paste your token into the Token field. Check also ${server}`;
    }
    const text = `${refused(as)} Check the room and the name, and ${server}`;
    return required === false ? text : `${text} If this chat requires sign-in, paste your token into the Token field.`;
  }

  // Capped exponential backoff with jitter: 0.5–1 s, 1–2 s, 2–4 s, … 15–30 s.
  function scheduleReconnect() {
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** state.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    state.attempt += 1;
    state.reconnectAt = Date.now() + delay;
    state.reconnectTimer = window.setTimeout(reconnectNow, delay);
    return delay;
  }

  function reconnectNow() {
    window.clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    if (!state.wanted || state.ws !== null) return;
    state.reconnects += 1;
    counters();
    open();
  }

  // Forgets the current socket's timers and identity (not the session).
  function teardownSocket() {
    stopHeartbeat();
    disarmAutoDisconnect();
    state.moderator = false;
    delete ui.app.dataset.moderator;
    closeModeration();
    window.clearTimeout(state.welcomeTimer);
    state.welcomeTimer = 0;
    const segment = state.segment;
    if (segment && segment.marker.dataset.marker === 'loading') {
      setMarker(segment, 'failed', 'Disconnected before earlier messages loaded');
    }
    clearHistoryRequest();
    state.ws = null;
    state.openedAt = 0;
    state.ownId = '';
    state.pending = [];
    state.online = newOnline();
    renderOnline();
    delete ui.app.dataset.openedAt;
    counters();
  }

  // A deliberate close: never reconnects. `why` is empty when the user
  // pressed Disconnect.
  function disconnect(why, byUser) {
    state.wanted = false;
    window.clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    if (byUser) {
      storage.set(STORAGE.connectOnLoad, 'false');
      showConnectError('');
    }
    const ws = state.ws;
    const wasOpen = state.openedAt !== 0;
    teardownSocket();
    if (ws) ws.close(1000, why || 'Closed by the user');
    if (wasOpen || ws) addSystem(why ? `Disconnected: ${why}.` : 'Disconnected.');
    ui.app.dataset.lastClose = '1000';
    setPhase('disconnected', why);
  }

  // -------------------------------------------------------------- heartbeat

  // A ping once the page has sent nothing for `heartbeatMs`: a chatting
  // page never sends one (its own frames keep the connection alive).
  function startHeartbeat() {
    stopHeartbeat();
    state.lastSentAt = Date.now();
    const check = Math.min(state.heartbeatMs, HEARTBEAT_CHECK_MS);
    state.heartbeatTimer = window.setInterval(() => {
      if (Date.now() - state.lastSentAt < state.heartbeatMs) return;
      if (sendFrame({ action: 'ping' })) {
        state.pings += 1;
        counters();
      }
    }, check);
  }

  function stopHeartbeat() {
    window.clearInterval(state.heartbeatTimer);
    state.heartbeatTimer = 0;
  }

  // -------------------------------------------------------- auto-disconnect

  function autoDisconnectSeconds() {
    const value = Math.floor(Number(ui.autoDisconnectSecs.value));
    return Number.isFinite(value) && value >= 1 ? value : 60;
  }

  function armAutoDisconnect() {
    disarmAutoDisconnect();
    const secs = autoDisconnectSeconds();
    state.autoAt = Date.now() + secs * 1000;
    state.autoTimer = window.setTimeout(() => {
      state.autoTimer = 0;
      disconnect(`auto-disconnect after ${secs} s`, false);
    }, secs * 1000);
    render();
  }

  function disarmAutoDisconnect() {
    window.clearTimeout(state.autoTimer);
    state.autoTimer = 0;
    state.autoAt = 0;
  }

  function autoDisconnectChanged() {
    storage.set(STORAGE.autoDisconnect, ui.autoDisconnect.checked ? 'true' : 'false');
    storage.set(STORAGE.autoDisconnectSecs, String(autoDisconnectSeconds()));
    if (ui.autoDisconnect.checked && isOpen()) armAutoDisconnect();
    else if (!ui.autoDisconnect.checked) disarmAutoDisconnect();
    render();
  }

  // ----------------------------------------------------------------- frames

  // A frame that names a room other than this socket's is never shown.
  function otherRoom(frame) {
    return typeof frame.room === 'string' && state.room !== '' && frame.room !== state.room;
  }

  function onFrame(data) {
    // API Gateway sends a two-way route's body-less reply as an empty frame:
    // nothing to show.
    if (typeof data === 'string' && data.trim() === '') return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      addSystem(`Server: ${String(data)}`);
      return;
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      addSystem(`Server: ${String(data)}`);
      return;
    }
    switch (frame.type) {
      case 'message':
        if (!otherRoom(frame)) onMessage(frame);
        break;
      case 'history':
        onHistory(frame);
        break;
      case 'welcome':
        onWelcome(frame);
        break;
      case 'presence':
        if (!otherRoom(frame)) onPresence(frame);
        break;
      case 'pong':
        state.pongs += 1;
        counters();
        break;
      case 'deleted':
        if (!otherRoom(frame)) onDeleted(frame);
        break;
      case 'removed':
        if (!otherRoom(frame)) onRemoved(frame);
        break;
      case 'moderated':
        addSystem(str(frame.message) || 'Done.');
        break;
      case 'error':
        onError(frame);
        break;
      default:
        // e.g. API Gateway's own {"message":"Internal server error",...}
        if (typeof frame.message === 'string' && frame.type === undefined) {
          showSendError(`Server: ${frame.message}`);
        } else if (typeof frame.message === 'string') {
          addSystem(frame.message);
        }
    }
  }

  function onMessage(frame) {
    const id = str(frame.message_id);
    if (id && !firstTime(`message:${id}`)) return;
    const sender = str(frame.connection_id);
    const text = typeof frame.text === 'string' ? frame.text : str(frame.message);
    let own = sender !== '' && state.ownIds.has(sender);
    if (!own && !state.ownId && sender !== '' && !state.others.has(sender)) {
      // Our echo can overtake our `welcome`: a text we sent on this socket is
      // ours until `welcome` says which connection id is ours.
      const index = state.pending.indexOf(text);
      if (index !== -1) {
        state.pending.splice(index, 1);
        own = true;
      }
    }
    addMessage(frame, own);
  }

  function onWelcome(frame) {
    const id = str(frame.connection_id);
    if (!id || id === state.ownId) return;
    state.ownId = id;
    state.ownIds.add(id);
    state.others.delete(id);
    state.pending = [];
    state.moderator = frame.moderator === true;
    ui.app.dataset.moderator = String(state.moderator);
    counters();
    remarkOwnLines();
    const room = typeof frame.room === 'string' ? frame.room : state.room;
    addPresence(`Welcome to #${room}! You are `, id, nameOf(frame), '.');
    welcomeOnline(frame, id);
    render();
    askLatest();
  }

  // `presence`: who joined and who left the room since the last one, one
  // frame per stream batch. Delivered at least once, so a join or a leave
  // may come again: each is shown once and changes the online list once.
  function onPresence(frame) {
    const joined = Array.isArray(frame.joined) ? frame.joined : null;
    const left = Array.isArray(frame.left) ? frame.left : null;
    if (joined === null && left === null) {
      if (typeof frame.message === 'string') addSystem(frame.message);
      return;
    }
    for (const member of joined || []) {
      if (isRecord(member)) onJoined(member);
    }
    for (const departure of left || []) {
      if (isRecord(departure)) onLeft(departure);
    }
    renderOnline();
  }

  function isRecord(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  function onJoined(member) {
    const id = str(member.connection_id);
    if (!id) return;
    // Someone the welcome already listed was here before us: no news.
    const listed = state.online.known && state.online.members.has(id);
    addOnline(id, nameOf(member));
    if (listed || state.ownIds.has(id) || !firstTime(`joined:${id}`)) return;
    state.others.add(id);
    addPresence('', id, nameOf(member), ' joined.');
  }

  function onLeft(departure) {
    const id = str(departure.connection_id);
    if (!id) return;
    removeOnline(id);
    if (!firstTime(`left:${id}`)) return;
    if (isRecord(departure.removed)) {
      const removal = departure.removed;
      const what = removal.banned_until ? ` was banned until ${utcTime(str(removal.banned_until)) || str(removal.banned_until)} by a moderator` : ' was removed by a moderator';
      const reason = typeof removal.reason === 'string' && removal.reason ? `: ${removal.reason}` : '.';
      addPresence('', id, nameOf(departure), `${what}${reason}`);
      return;
    }
    const duration = humanSeconds(Number(departure.duration_seconds));
    const after = duration ? ` left after ${duration}.` : ' left.';
    if (state.ownIds.has(id)) addPresence('You (earlier connection ', id, '', `)${after}`);
    else addPresence('', id, nameOf(departure), after);
  }

  // ----------------------------------------------------------- online list
  //
  // The welcome lists who is in the room (the newcomer included, at most
  // 200, `online_count` in all); presence frames add and remove people by
  // connection id. A leave is remembered, so a repeated join of someone who
  // left never brings them back.

  function welcomeOnline(frame, ownId) {
    const online = state.online; // may hold presence that came before the welcome
    const listed = Array.isArray(frame.online) ? frame.online.filter(isRecord) : null;
    const count = Number.isInteger(frame.online_count) ? frame.online_count : 0;
    // No list (an older server), or an empty one because the server could
    // not read the room (`online_count` 0 never counts the newcomer): unknown.
    online.known = listed !== null && count > 0;
    const members = new Map([[ownId, nameOf(frame)]]); // yourself first
    const ids = new Set([ownId]);
    for (const member of listed || []) {
      const id = str(member.connection_id);
      if (!id) continue;
      ids.add(id);
      if (!online.gone.has(id)) members.set(id, members.has(id) ? members.get(id) : nameOf(member));
    }
    for (const [id, name] of online.members) {
      if (!members.has(id)) members.set(id, name);
    }
    online.members = members;
    online.unlisted = online.known ? Math.max(0, count - ids.size) : 0;
    renderOnline();
  }

  function addOnline(id, name) {
    const online = state.online;
    if (!online.gone.has(id)) online.members.set(id, name);
  }

  function removeOnline(id) {
    const online = state.online;
    if (online.gone.has(id)) return;
    online.gone.add(id);
    if (online.gone.size > 5000) online.gone.delete(online.gone.values().next().value);
    // Someone not listed leaves: one fewer of those the count alone told of.
    if (!online.members.delete(id) && online.unlisted > 0) online.unlisted -= 1;
  }

  function renderOnline() {
    const online = state.online;
    ui.online.hidden = !online.known;
    const items = [];
    if (online.known) {
      for (const [id, name] of online.members) {
        if (items.length === ONLINE_SHOWN) break;
        items.push(onlineItem(id, name));
      }
    }
    const total = online.known ? online.members.size + online.unlisted : 0;
    ui.onlineList.replaceChildren(...items);
    ui.onlineHeading.textContent = `Online (${total}): `;
    const more = total - items.length;
    ui.onlineMore.textContent = more > 0 ? ` and ${more} more` : '';
    ui.online.dataset.count = String(total);
    ui.online.dataset.listed = String(items.length);
  }

  // "Ada", or the connection id without a name; your own entry marked.
  function onlineItem(id, name) {
    const li = document.createElement('li');
    li.dataset.connectionId = id;
    if (name) {
      const bdi = document.createElement('bdi');
      bdi.className = 'name';
      bdi.textContent = name;
      li.append(bdi);
      li.title = id;
    } else {
      li.className = 'id';
      li.textContent = id;
    }
    const own = id === state.ownId;
    const earlier = !own && state.ownIds.has(id);
    if (own || earlier) {
      li.classList.add('own');
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = own ? ' (you)' : ' (you, earlier connection)';
      li.append(you);
    } else if (state.moderator && isOpen()) {
      for (const [action, label] of [['remove', 'Remove'], ['ban', 'Ban']]) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = `moderate link-button ${action}-member`;
        button.dataset.action = action;
        button.textContent = label;
        button.setAttribute('aria-label', `${label} ${name || id}`);
        li.append(' ', button);
      }
    }
    return li;
  }

  // ------------------------------------------------------------ moderation
  //
  // A moderator's welcome says `moderator: true`; the online list then
  // offers Remove and Ban, every message Delete (a member's own messages
  // too). The server answers each with `moderated` or an error; the room
  // learns of removals from `presence`, of deletions from `deleted`.

  function openModeration(action, id, name) {
    state.moderating = { action, id, name };
    const who = name ? `${name} (${id})` : id;
    ui.moderationWhat.textContent = action === 'ban'
      ? `Ban ${who} from #${state.room}: their connections here are closed, and they cannot come back until the ban ends.`
      : `Remove ${who} from #${state.room}: their connection is closed; they may come back.`;
    ui.moderationMinutesLabel.hidden = action !== 'ban';
    ui.moderationConfirm.textContent = action === 'ban' ? 'Ban' : 'Remove';
    ui.moderationForm.hidden = false;
    ui.moderationReason.focus();
  }

  function closeModeration() {
    state.moderating = null;
    ui.moderationForm.hidden = true;
    ui.moderationReason.value = '';
  }

  function confirmModeration() {
    const target = state.moderating;
    if (!target) return;
    const frame = { action: target.action, connection_id: target.id };
    const reason = ui.moderationReason.value.trim();
    if (reason) frame.reason = reason;
    if (target.action === 'ban') frame.minutes = Math.floor(Number(ui.moderationMinutes.value)) || 60;
    if (sendFrame(frame)) closeModeration();
    else showSendError('Not connected.');
  }

  function deleteMessage(li) {
    const id = li.dataset.messageId;
    if (!id) return;
    if (!sendFrame({ action: 'delete', message_id: id })) showSendError('Not connected.');
  }

  // `deleted`: shown as deleted wherever it is in the log, history
  // included, and when it comes again later.
  function onDeleted(frame) {
    const id = str(frame.message_id);
    if (!id) return;
    const by = str(frame.by);
    state.deleted.set(id, by);
    if (state.deleted.size > 5000) state.deleted.delete(state.deleted.keys().next().value);
    for (const li of ui.log.querySelectorAll('li.msg')) {
      if (li.dataset.messageId === id) markDeleted(li, by);
    }
  }

  // `removed`: a moderator took this page out of the room. It says why
  // and does not reconnect; a ban is remembered (this tab) so a refused
  // reconnect says why too.
  function onRemoved(frame) {
    const room = typeof frame.room === 'string' ? frame.room : state.room;
    const until = Date.parse(str(frame.banned_until));
    const reason = typeof frame.reason === 'string' && frame.reason ? ` Reason: ${frame.reason}` : '';
    const why = Number.isFinite(until)
      ? `A moderator banned you from #${room} until ${utcDateTime(until)}.${reason}`
      : `A moderator removed you from #${room}.${reason}`;
    if (typeof frame.banned_until === 'string') {
      storage.set(`${STORAGE.banPrefix}${room}`, JSON.stringify({ until: frame.banned_until, reason: str(frame.reason) }), true);
    }
    state.removedWhy = why;
    state.wanted = false;
    window.clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    ui.app.dataset.removed = typeof frame.banned_until === 'string' ? 'banned' : 'removed';
    closeModeration();
    addSystem(why, 'warn');
    showConnectError(why);
  }

  // The ban from `room` this tab was told of, while it lasts.
  function rememberedBan(room) {
    const raw = storage.get(`${STORAGE.banPrefix}${room}`, true);
    if (!raw) return null;
    try {
      const ban = JSON.parse(raw);
      const until = Date.parse(str(ban.until));
      if (Number.isFinite(until) && until > Date.now()) return ban;
    } catch (_) {
      // Not ours, or damaged: forgotten below.
    }
    storage.remove(`${STORAGE.banPrefix}${room}`, true);
    return null;
  }

  // Whether `room` is members-only on the server that served the page
  // (its /config.json), and the rooms the token names; null when unknown.
  function membership(room, claims) {
    const config = state.config;
    if (!config || !Array.isArray(config.members_only_rooms) || str(config.websocket_url) !== state.url) return null;
    const matches = (patterns) => patterns.some((pattern) => (String(pattern).endsWith('*')
      ? room.startsWith(String(pattern).slice(0, -1))
      : pattern === room));
    const claim = claims[str(config.rooms_claim) || 'rooms'];
    const named = Array.isArray(claim) ? claim.map(String) : typeof claim === 'string' ? claim.split(/[\s,]+/).filter(Boolean) : [];
    return { membersOnly: matches(config.members_only_rooms), member: matches(named), named };
  }

  function onError(frame) {
    if (historyError(frame)) return;
    const code = str(frame.code);
    if (code === 'message_too_long') setMaxBytes(frame.limit_bytes);
    showSendError(str(frame.message) || `Error: ${code || 'unknown'}`);
    // Rejected, so nothing was stored: give the text back to fix and resend.
    const rejected = ['message_too_long', 'empty_message', 'invalid_message', 'internal'];
    if (rejected.includes(code) && ui.message.value === '' && state.lastSent) {
      ui.message.value = state.lastSent;
      const index = state.pending.indexOf(state.lastSent);
      if (index !== -1) state.pending.splice(index, 1);
      state.lastSent = '';
    }
    renderComposer();
  }

  // ------------------------------------------------------------------ input

  function sendMessage() {
    const text = ui.message.value;
    if (!isOpen()) {
      showSendError('Not connected.');
      return;
    }
    if (text.trim() === '') {
      showSendError('Type a message first.');
      return;
    }
    const bytes = byteLength(text);
    if (bytes > state.maxBytes) {
      showSendError(`Too long: ${bytes} bytes; the limit is ${state.maxBytes} bytes.`);
      return;
    }
    if (text === LEGACY_HEARTBEAT) {
      // The server answers this exact text with a pong and broadcasts nothing.
      showSendError('A message of just “ping” is reserved for the heartbeat and would not be delivered.');
      return;
    }
    const frame = JSON.stringify({ action: 'sendmessage', message: text });
    if (byteLength(frame) > MAX_FRAME_BYTES) {
      showSendError(`Too long once encoded: the frame would be over ${MAX_FRAME_BYTES} bytes.`);
      return;
    }
    state.ws.send(frame);
    state.lastSentAt = Date.now();
    if (!state.ownId) {
      state.pending.push(text);
      if (state.pending.length > 100) state.pending.shift();
    }
    state.lastSent = text;
    ui.message.value = '';
    clearSendError();
    renderComposer();
  }

  ui.connectForm.addEventListener('submit', (event) => {
    event.preventDefault();
    // Enter in the room or name field while connected: join there.
    if (active()) joinChanged();
    else connect(ui.url.value);
  });
  ui.disconnect.addEventListener('click', () => disconnect('', true));
  ui.onlineList.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button.moderate') : null;
    const li = button && button.closest('li');
    if (!li || !li.dataset.connectionId) return;
    openModeration(button.dataset.action, li.dataset.connectionId, state.online.members.get(li.dataset.connectionId) || '');
  });
  ui.log.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button.delete-message') : null;
    const li = button && button.closest('li.msg');
    if (li) deleteMessage(li);
  });
  ui.moderationForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmModeration();
  });
  ui.moderationCancel.addEventListener('click', closeModeration);
  ui.token.addEventListener('input', syncNameField);
  ui.rememberToken.addEventListener('change', () => {
    const token = checkToken(ui.token.value);
    rememberToken(token.ok ? token.value : '');
  });
  for (const input of [ui.room, ui.name, ui.token]) {
    input.addEventListener('change', joinChanged);
    // While connected, Connect is disabled and so Enter would not submit.
    input.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.isComposing || !active()) return;
      event.preventDefault();
      joinChanged();
    });
    // A shown problem goes away as soon as it is fixed.
    input.addEventListener('input', () => {
      if (input.getAttribute('aria-invalid') === 'true') readJoin();
    });
  }
  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.message.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.isComposing || event.keyCode === 229) return; // IME is choosing a character
    event.preventDefault();
    sendMessage();
  });
  ui.message.addEventListener('input', () => {
    clearSendError();
    renderComposer();
  });
  ui.scroller.addEventListener('scroll', () => {
    following = nearBottom();
    maybeLoadOlder();
  }, { passive: true });
  ui.loadOlder.addEventListener('click', () => {
    state.hist.error = '';
    loadOlder();
  });
  if (typeof ResizeObserver === 'function') new ResizeObserver(followEnd).observe(ui.scroller);
  ui.autoDisconnect.addEventListener('change', autoDisconnectChanged);
  ui.autoDisconnectSecs.addEventListener('change', autoDisconnectChanged);
  window.addEventListener('online', () => {
    if (state.reconnectTimer) reconnectNow();
  });

  // ------------------------------------------------------------------ start

  async function loadConfig() {
    if (window.location.protocol !== 'http:' && window.location.protocol !== 'https:') return null;
    const abort = new AbortController();
    const timer = window.setTimeout(() => abort.abort(), CONFIG_TIMEOUT_MS);
    try {
      const response = await fetch('config.json', {
        cache: 'no-store',
        signal: abort.signal,
        headers: { Accept: 'application/json' },
      });
      if (!response.ok) return null; // a static host: no config
      return await response.json();
    } catch (_) {
      return null;
    } finally {
      window.clearTimeout(timer);
    }
  }

  // A token in the page's own address is taken out of it at once (into the
  // Token field): an address is shown, kept in the history, shared.
  function takeTokenFromAddress() {
    const linked = params.get('token');
    if (linked === null) return null;
    params.delete('token');
    try {
      const url = new URL(window.location.href);
      url.searchParams.delete('token');
      window.history.replaceState(window.history.state, '', url.href);
    } catch (_) {
      /* some file:// pages cannot rewrite their address */
    }
    return linked;
  }

  function start() {
    const linkedToken = takeTokenFromAddress();
    const remembered = storage.get(STORAGE.url) || '';
    if (remembered) ui.url.value = remembered;
    // A link's ?room= wins over the remembered room.
    const linked = params.get('room');
    ui.room.value = linked !== null ? linked : storage.get(STORAGE.room) || DEFAULT_ROOM;
    ui.name.value = storage.get(STORAGE.name) || '';
    ui.rememberToken.checked = storage.get(STORAGE.rememberToken) === 'true';
    const keptToken = ui.rememberToken.checked ? storage.get(STORAGE.token) : storage.get(STORAGE.token, true);
    ui.token.value = linkedToken !== null ? linkedToken : keptToken || '';
    if (!ui.rememberToken.checked) storage.remove(STORAGE.token); // none left from an earlier "Remember"
    syncNameField();
    const join = readJoin();
    if (join) reflectRoom(join.room);
    ui.autoDisconnect.checked = storage.get(STORAGE.autoDisconnect) === 'true';
    const secs = Number(storage.get(STORAGE.autoDisconnectSecs));
    if (Number.isInteger(secs) && secs >= 1) ui.autoDisconnectSecs.value = String(secs);
    counters();
    render();
    window.setInterval(render, TICK_MS);

    if (remembered && validWebSocketUrl(remembered) && storage.get(STORAGE.connectOnLoad) !== 'false') {
      // With a bad ?room= this says why instead of connecting.
      connect(remembered);
    }

    loadConfig().then((config) => {
      if (config && typeof config === 'object') {
        state.config = config;
        const url = str(config.websocket_url);
        if (url && validWebSocketUrl(url) && ui.url.value === '' && !state.wanted) {
          ui.url.value = url;
        }
        setMaxBytes(config.max_message_bytes);
        if (HEARTBEAT_PARAM === null && Number.isFinite(config.heartbeat_secs) && config.heartbeat_secs > 0) {
          state.heartbeatMs = Math.round(config.heartbeat_secs * 1000);
          if (state.heartbeatTimer) startHeartbeat();
        }
        // Served by the local stack, which also serves the metrics dashboard.
        $('dashboard-link').hidden = false;
      }
      ui.app.dataset.ready = 'true';
    });
  }

  start();
}());

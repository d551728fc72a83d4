// The chat page: what it shows and what the user does, on top of the
// protocol client (chat-client.js, `Chat.Client`) and the pure rules
// (chat-rules.js, `Chat.rules`), loaded before it. Plain script, no build
// step, no dependencies.
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

  const { rules } = window.Chat;
  const { str, isRecord, nameOf, utcDateTime, utcTime } = rules;

  const CONFIG_TIMEOUT_MS = 3000;
  const TICK_MS = 250;
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
  // The heartbeat's quiet time; without it, the server's (/config.json),
  // else the client's default.
  const HEARTBEAT_PARAM = numberParam('heartbeat', null, 0.1);
  const MAX_LINES = Math.floor(numberParam('max-lines', 500, 10));

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

  const client = new window.Chat.Client({
    heartbeatMs: HEARTBEAT_PARAM === null ? undefined : Math.round(HEARTBEAT_PARAM * 1000),
    historySpace,
  });

  const state = {
    phase: 'disconnected', // the client's, or `error` for what the page refused
    detail: '', // the status line's explanation
    nameAside: '', // the name field's text while a token names the user instead
    config: null, // /config.json of the server that served the page, if any
    autoTimer: 0,
    autoAt: 0,
    maxBytes: rules.DEFAULT_MAX_MESSAGE_BYTES,
    // The current socket's part of the log: its history segment, its
    // marker line, and the top of the history shown above the marker.
    marker: null,
    // The remove or ban being confirmed: {action, id, name}, or null.
    moderating: null,
  };

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
        return [client.attempt > 0 ? `Connecting (attempt ${client.attempt + 1})…` : 'Connecting…', ''];
      case 'connected':
        return ['Connected', ''];
      case 'reconnecting':
      case 'error': {
        let what;
        if (state.phase === 'error') what = state.detail ? `Error: ${state.detail}` : 'Error';
        else what = state.detail ? state.detail[0].toUpperCase() + state.detail.slice(1) : 'Disconnected';
        if (!client.reconnecting) return [what, ''];
        const secs = Math.max(0, Math.ceil((client.reconnectAt - Date.now()) / 1000));
        return [`${what} — reconnecting`, ` in ${secs} s…`];
      }
      default:
        return [state.detail ? `Disconnected: ${state.detail}` : 'Disconnected', ''];
    }
  }

  function render() {
    const now = Date.now();
    const [announced, countdown] = statusText();
    // Rewritten only when they change, so screen readers hear each change once.
    if (ui.status.textContent !== announced) ui.status.textContent = announced;
    if (ui.countdown.textContent !== countdown) ui.countdown.textContent = countdown;
    ui.app.dataset.state = state.phase;
    ui.dot.className = `dot ${state.phase}`;

    const busy = client.active;
    ui.connect.disabled = busy;
    ui.disconnect.disabled = !busy;
    ui.url.readOnly = busy;

    if (client.openedAt) {
      ui.connectedAt.textContent = utcDateTime(client.openedAt);
      ui.duration.textContent = rules.elapsed(now - client.openedAt);
    } else {
      ui.connectedAt.textContent = '—';
      ui.duration.textContent = '—';
    }
    const room = busy && client.room ? `#${client.room}` : '—';
    if (ui.roomNow.textContent !== room) ui.roomNow.textContent = room;
    ui.me.textContent = client.ownId || '—';

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
    const bytes = rules.byteLength(text);
    const over = bytes - state.maxBytes;
    ui.counter.textContent = over > 0
      ? `${bytes} / ${state.maxBytes} bytes — ${over} over the limit`
      : `${bytes} / ${state.maxBytes} bytes`;
    ui.counter.classList.toggle('over', over > 0);
    ui.counter.classList.toggle('near', over <= 0 && bytes >= state.maxBytes * 0.9);
    ui.message.setAttribute('aria-invalid', over > 0 ? 'true' : 'false');
    ui.send.disabled = !client.isOpen || over > 0 || text.trim() === '';
  }

  // The line above the log: how far back the log reaches, and a button for
  // the next older page (scrolling to the top presses it).
  function renderTop() {
    const h = client.history;
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
        text = client.isOpen ? 'Earlier messages:' : 'Earlier messages (connect to load them):';
        button = 'Load earlier messages';
      }
    }
    if (ui.top.dataset.state !== mode) ui.top.dataset.state = mode;
    ui.top.hidden = mode === '';
    if (ui.topText.textContent !== text) ui.topText.textContent = text;
    ui.loadOlder.hidden = button === '';
    if (button && ui.loadOlder.textContent !== button) ui.loadOlder.textContent = button;
    ui.loadOlder.disabled = !client.isOpen || h.request !== null;
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
    if (dropped && !client.history.trimmed) {
      client.historyTrimmed();
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
    const messageId = str(frame.message_id);
    if (isRecord(frame.deleted) || client.deleted.has(messageId)) {
      markDeleted(li, isRecord(frame.deleted) ? str(frame.deleted.by) : client.deleted.get(messageId));
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
    const may = (own || client.moderator) && Boolean(li.dataset.messageId) && !li.dataset.deleted;
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

  function remarkOwnLines() {
    for (const li of ui.log.querySelectorAll('li.msg')) {
      markLine(li, client.ownIds.has(li.dataset.sender || ''));
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
    ui.app.dataset.pings = String(client.pings);
    ui.app.dataset.pongs = String(client.pongs);
    ui.app.dataset.reconnects = String(client.reconnects);
    ui.app.dataset.connectionId = client.ownId;
    ui.app.dataset.room = client.room;
    ui.app.dataset.historyRequests = String(client.historyRequests);
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
    const room = rules.checkRoom(ui.room.value);
    const token = rules.checkToken(ui.token.value);
    const name = rules.checkName(typedName());
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
  // trying to) the socket is replaced by one in the new room (with a new
  // log), under the new name or with the new token.
  function joinChanged() {
    const join = readJoin();
    if (!join) return; // said next to the field; the current socket stays
    rememberJoin(join);
    const roomChanged = join.room !== client.room;
    const tokenChanged = join.token !== client.token;
    if (!client.rejoin(join)) return;
    showConnectError('');
    if (roomChanged) return;
    if (tokenChanged) addSystem(join.token ? 'Reconnecting with your token…' : 'Reconnecting without a token…');
    else addSystem(join.name ? `Reconnecting as “${join.name}”…` : 'Reconnecting without a name…');
  }

  // --------------------------------------------------------------- history
  //
  // Each socket gets a marker line when it opens. Its history goes above
  // the marker, live messages below it; the client hands on only messages
  // not shown yet. Older pages go on top as the reader scrolls up.

  // How many lines a history page may add. Older pages only fill the room
  // the bounded log has left; the first page takes what fits; a
  // reconnect's pages are newer than everything shown, so they may push
  // the oldest lines out.
  function historySpace(kind, reconnect) {
    const free = MAX_LINES - ui.log.childElementCount;
    if (kind === 'older') return free;
    if (!reconnect) return Math.max(1, free);
    return MAX_LINES;
  }

  function markerText(segment) {
    switch (segment.status) {
      case 'loading': return 'Loading earlier messages…';
      case 'joined': return 'New since you joined';
      case 'empty': return `No earlier messages in #${client.history.room}`;
      case 'reconnected': return 'New since you reconnected';
      case 'nothing-missed': return 'Nothing missed while you were away';
      case 'none': return 'This server keeps no history';
      default:
        return segment.why ? `Earlier messages could not be loaded: ${segment.why}` : 'Disconnected before earlier messages loaded';
    }
  }

  function setMarker(line, segment) {
    line.className = `marker ${segment.status}`;
    line.dataset.marker = segment.status;
    line.textContent = markerText(segment);
  }

  function beginSegment(segment) {
    const line = document.createElement('li');
    setMarker(line, segment);
    append(line);
    state.marker = { segment, line, top: line };
  }

  function historyLines(chronological) {
    return chronological.map((frame) => messageLine(frame, client.isOwn(str(frame.connection_id)), 'history'));
  }

  function placeHistory({ kind, segment, messages }) {
    if (kind === 'older') {
      keepView(() => {
        const first = ui.log.firstChild;
        for (const li of historyLines(messages)) ui.log.insertBefore(li, first);
      });
      renderTop();
      fillView();
      return;
    }
    const view = state.marker;
    if (!view || view.segment !== segment) return;
    if (view.top.parentNode !== ui.log) {
      client.historyTrimmed(); // the bounded log already dropped the place this page belonged
      return;
    }
    if (messages.length === 0) return;
    keepView(() => {
      const lines = historyLines(messages);
      for (const li of lines) ui.log.insertBefore(li, view.top);
      view.top = lines[0];
      trim();
    });
  }

  // A reconnect read back as far as it may without meeting what was shown.
  function gapUnfilled({ segment }) {
    const view = state.marker;
    if (!view || view.segment !== segment || view.top.parentNode !== ui.log) return;
    const li = document.createElement('li');
    li.className = 'system warn';
    li.textContent = 'More was said while you were away than is shown here.';
    keepView(() => {
      ui.log.insertBefore(li, view.top);
      view.top = li;
      trim();
    });
  }

  function segmentChanged(segment) {
    const view = state.marker;
    if (view && view.segment === segment) setMarker(view.line, segment);
    renderTop();
    // The log's first page is in.
    if (segment.status === 'joined' || segment.status === 'empty') fillView();
  }

  function loadOlder() {
    if (!client.loadOlder()) renderTop();
  }

  // Scrolled (or sized) so that the top of the log shows: the next page.
  function maybeLoadOlder() {
    if (ui.scroller.scrollTop <= LOAD_OLDER_PX && !client.history.error) loadOlder();
  }

  // A log that does not fill its box has no scrolling to ask for more with.
  function fillView() {
    if (ui.scroller.scrollHeight <= ui.scroller.clientHeight + LOAD_OLDER_PX) maybeLoadOlder();
  }

  // A new room: a new log.
  function resetLog() {
    ui.log.replaceChildren();
    state.marker = null;
    following = true;
    renderTop();
  }

  // ------------------------------------------------------------ connection

  function connect(text) {
    if (client.active) return; // already connected or connecting: never a second socket
    if (!rules.validWebSocketUrl(text.trim())) {
      setPhase('error', 'enter a ws:// or wss:// URL');
      ui.url.focus();
      return;
    }
    const pasted = rules.splitJoinParams(text.trim());
    if (pasted.room !== null) ui.room.value = pasted.room;
    if (pasted.name !== null) setTypedName(pasted.name);
    if (pasted.token !== null) ui.token.value = pasted.token;
    const { url } = pasted;
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
    client.connect({ url, room: join.room, name: join.name, token: join.token });
  }

  function onConnecting() {
    delete ui.app.dataset.removed;
    counters();
    setPhase('connecting');
  }

  function onOpenFailed({ why }) {
    delete ui.app.dataset.removed;
    counters();
    setPhase('error', why);
  }

  function onOpen({ segment }) {
    ui.app.dataset.openedAt = String(client.openedAt);
    showConnectError('');
    beginSegment(segment);
    addSystem(`Connected to #${client.room} (${client.url}) at ${utcDateTime(client.openedAt)}.`);
    if (ui.autoDisconnect.checked) armAutoDisconnect();
    counters();
    setPhase('connected');
    if (document.activeElement === ui.connect || document.activeElement === document.body) {
      ui.message.focus();
    }
  }

  // The socket is gone (closed, replaced or disconnected): so is what
  // belonged to it.
  function onTeardown() {
    disarmAutoDisconnect();
    delete ui.app.dataset.moderator;
    closeModeration();
    renderOnline();
    delete ui.app.dataset.openedAt;
    counters();
  }

  function onClose(close) {
    ui.app.dataset.lastClose = String(close.code);
    const meaning = rules.closeMeaning(close.code);
    const why = close.wasOpen ? `${close.code} ${meaning}` : String(close.code);
    const reason = close.reason && close.reason.toLowerCase() !== meaning ? `, “${close.reason}”` : '';
    if (close.code === 1009) {
      showSendError('The server closed the connection because a message was too big (1009).');
    }
    if (!close.wasOpen) showConnectError(refusal());
    if (close.removed) {
      setPhase('disconnected', 'removed by a moderator');
      return;
    }
    if (close.retryIn === null) {
      setPhase('disconnected', `closed (${why}${reason})`);
      return;
    }
    const what = close.wasOpen ? `Connection closed (${why}${reason})` : `Could not connect (${why}${reason}): refused or unreachable`;
    addSystem(`${what}. Reconnecting in ${Math.ceil(close.retryIn / 1000)} s…`, 'warn');
    setPhase(client.phase, close.wasOpen ? `connection closed (${why})` : 'connection refused or server unreachable');
  }

  // A handshake the server answered with an error (a bad room or name, no
  // token or a refused one) and one that never reached a server look the
  // same to a page: a close before `open`, code 1006, no reason. What the
  // page can say: what it sent, and what to check.
  function refusal() {
    const { room, name, token, url } = client;
    const refused = (what) => `The server refused the connection to #${room}${what}, or could not be reached `
      + '(the browser is not told which, or why).';
    const server = `that the server is running at ${url}.`;
    if (token) {
      const claims = rules.tokenClaims(token) || {};
      const ban = rememberedBan(room);
      if (ban) {
        const reason = ban.reason ? ` Reason: ${ban.reason}` : '';
        return `A moderator banned you from #${room} until ${utcDateTime(Date.parse(ban.until))}.${reason}`;
      }
      const rooms = rules.membership(state.config, url, room, claims);
      if (rooms && rooms.membersOnly && !rooms.member) {
        const named = rooms.named.length ? ` (it names ${rooms.named.join(', ')})` : '';
        return `#${room} is members-only, and your sign-in does not make you a member${named}. `
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
    const as = name ? ` as “${name}”` : '';
    const required = rules.signInRequired(state.config, url);
    if (required) {
      return `${refused(as)} This chat requires sign-in and no token was given: `
        + `paste your token into the Token field. Check also ${server}`;
    }
    const text = `${refused(as)} Check the room and the name, and ${server}`;
    return required === false ? text : `${text} If this chat requires sign-in, paste your token into the Token field.`;
  }

  // A deliberate close: never reconnects. `why` is empty when the user
  // pressed Disconnect.
  function disconnect(why, byUser) {
    if (byUser) {
      storage.set(STORAGE.connectOnLoad, 'false');
      showConnectError('');
    }
    if (client.disconnect(why || undefined)) addSystem(why ? `Disconnected: ${why}.` : 'Disconnected.');
    ui.app.dataset.lastClose = '1000';
    setPhase('disconnected', why);
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
    if (ui.autoDisconnect.checked && client.isOpen) armAutoDisconnect();
    else if (!ui.autoDisconnect.checked) disarmAutoDisconnect();
    render();
  }

  // ----------------------------------------------------------------- frames

  function onWelcome({ id, name, room }) {
    ui.app.dataset.moderator = String(client.moderator);
    counters();
    remarkOwnLines();
    addPresence(`Welcome to #${room}! You are `, id, name, '.');
    render();
  }

  function onLeft({ id, name, departure }) {
    if (isRecord(departure.removed)) {
      const removal = departure.removed;
      const what = removal.banned_until ? ` was banned until ${utcTime(str(removal.banned_until)) || str(removal.banned_until)} by a moderator` : ' was removed by a moderator';
      const reason = typeof removal.reason === 'string' && removal.reason ? `: ${removal.reason}` : '.';
      addPresence('', id, name, `${what}${reason}`);
      return;
    }
    const duration = rules.humanSeconds(Number(departure.duration_seconds));
    const after = duration ? ` left after ${duration}.` : ' left.';
    if (client.ownIds.has(id)) addPresence('You (earlier connection ', id, '', `)${after}`);
    else addPresence('', id, name, after);
  }

  // A frame the page has no place for: the server's own words.
  function onNotice({ frame }) {
    if (frame.type === undefined) showSendError(`Server: ${frame.message}`);
    else addSystem(frame.message);
  }

  function onError({ frame, code, rejected }) {
    if (code === 'message_too_long') setMaxBytes(frame.limit_bytes);
    showSendError(str(frame.message) || `Error: ${code || 'unknown'}`);
    // Nothing was stored: the text comes back to fix and send again.
    if (rejected && ui.message.value === '' && client.lastSent) ui.message.value = client.takeBackLast();
    renderComposer();
  }

  // ----------------------------------------------------------- online list

  function renderOnline() {
    const { online } = client;
    ui.online.hidden = !online.known;
    const items = [];
    if (online.known) {
      for (const [id, name] of online.members) {
        // As many as a welcome lists; the rest are counted ("and 12 more").
        if (items.length === rules.limits.welcome_max_listed) break;
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
    const own = id === client.ownId;
    const earlier = !own && client.ownIds.has(id);
    if (own || earlier) {
      li.classList.add('own');
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = own ? ' (you)' : ' (you, earlier connection)';
      li.append(you);
    } else if (client.moderator && client.isOpen) {
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
      ? `Ban ${who} from #${client.room}: their connections here are closed, and they cannot come back until the ban ends.`
      : `Remove ${who} from #${client.room}: their connection is closed; they may come back.`;
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
    const reason = ui.moderationReason.value.trim();
    const sent = target.action === 'ban'
      ? client.ban(target.id, Math.floor(Number(ui.moderationMinutes.value)) || 60, reason)
      : client.remove(target.id, reason);
    if (sent) closeModeration();
    else showSendError('Not connected.');
  }

  function deleteMessage(li) {
    const id = li.dataset.messageId;
    if (!id) return;
    if (!client.deleteMessage(id)) showSendError('Not connected.');
  }

  // `deleted`: shown as deleted wherever it is in the log, history
  // included (and when it comes again later: messageLine).
  function onDeleted({ id, by }) {
    for (const li of ui.log.querySelectorAll('li.msg')) {
      if (li.dataset.messageId === id) markDeleted(li, by);
    }
  }

  // `removed`: a moderator took this page out of the room (the client does
  // not reconnect). It says why; a ban is remembered (this tab) so a
  // refused reconnect says why too.
  function onRemoved({ room, reason, bannedUntil }) {
    const until = Date.parse(str(bannedUntil));
    const because = reason ? ` Reason: ${reason}` : '';
    const why = Number.isFinite(until)
      ? `A moderator banned you from #${room} until ${utcDateTime(until)}.${because}`
      : `A moderator removed you from #${room}.${because}`;
    if (bannedUntil !== null) {
      storage.set(`${STORAGE.banPrefix}${room}`, JSON.stringify({ until: bannedUntil, reason }), true);
    }
    ui.app.dataset.removed = bannedUntil !== null ? 'banned' : 'removed';
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

  // ------------------------------------------------------------------ input

  function sendMessage() {
    const text = ui.message.value;
    if (!client.isOpen) {
      showSendError('Not connected.');
      return;
    }
    const problem = rules.messageProblem(text, state.maxBytes);
    if (problem) {
      showSendError(problem);
      return;
    }
    client.sendMessage(text);
    ui.message.value = '';
    clearSendError();
    renderComposer();
  }

  client
    .on('reset', resetLog)
    .on('connecting', onConnecting)
    .on('openFailed', onOpenFailed)
    .on('open', onOpen)
    .on('teardown', onTeardown)
    .on('close', onClose)
    .on('ping', counters)
    .on('pong', counters)
    .on('welcome', onWelcome)
    .on('online', renderOnline)
    .on('joined', ({ id, name }) => addPresence('', id, name, ' joined.'))
    .on('left', onLeft)
    .on('message', ({ frame, own }) => append(messageLine(frame, own, 'live')))
    .on('historyChange', () => {
      counters();
      renderTop();
    })
    .on('historyPage', placeHistory)
    .on('gapUnfilled', gapUnfilled)
    .on('segment', segmentChanged)
    .on('deleted', onDeleted)
    .on('removed', onRemoved)
    .on('moderated', ({ frame }) => addSystem(str(frame.message) || 'Done.'))
    .on('error', onError)
    .on('notice', onNotice)
    .on('serverText', ({ text }) => addSystem(`Server: ${text}`));

  ui.connectForm.addEventListener('submit', (event) => {
    event.preventDefault();
    // Enter in the room or name field while connected: join there.
    if (client.active) joinChanged();
    else connect(ui.url.value);
  });
  ui.disconnect.addEventListener('click', () => disconnect('', true));
  ui.onlineList.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button.moderate') : null;
    const li = button && button.closest('li');
    if (!li || !li.dataset.connectionId) return;
    openModeration(button.dataset.action, li.dataset.connectionId, client.online.members.get(li.dataset.connectionId) || '');
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
    const token = rules.checkToken(ui.token.value);
    rememberToken(token.ok ? token.value : '');
  });
  for (const input of [ui.room, ui.name, ui.token]) {
    input.addEventListener('change', joinChanged);
    // While connected, Connect is disabled and so Enter would not submit.
    input.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.isComposing || !client.active) return;
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
  ui.loadOlder.addEventListener('click', loadOlder);
  if (typeof ResizeObserver === 'function') new ResizeObserver(followEnd).observe(ui.scroller);
  ui.autoDisconnect.addEventListener('change', autoDisconnectChanged);
  ui.autoDisconnectSecs.addEventListener('change', autoDisconnectChanged);
  window.addEventListener('online', () => client.retryNow());

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
    ui.room.value = linked !== null ? linked : storage.get(STORAGE.room) || rules.DEFAULT_ROOM;
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

    if (remembered && rules.validWebSocketUrl(remembered) && storage.get(STORAGE.connectOnLoad) !== 'false') {
      // With a bad ?room= this says why instead of connecting.
      connect(remembered);
    }

    loadConfig().then((config) => {
      if (config && typeof config === 'object') {
        state.config = config;
        const url = str(config.websocket_url);
        if (url && rules.validWebSocketUrl(url) && ui.url.value === '' && !client.wanted) {
          ui.url.value = url;
        }
        setMaxBytes(config.max_message_bytes);
        rules.applyLimits(config.limits);
        ui.moderationMinutes.max = String(rules.limits.ban_minutes_max);
        ui.moderationReason.maxLength = rules.limits.moderation_reason_chars;
        if (HEARTBEAT_PARAM === null && Number.isFinite(config.heartbeat_secs) && config.heartbeat_secs > 0) {
          client.setHeartbeatMs(Math.round(config.heartbeat_secs * 1000));
        }
        // Served by the local stack, which also serves the metrics dashboard.
        $('dashboard-link').hidden = false;
      }
      ui.app.dataset.ready = 'true';
    });
  }

  start();
}());

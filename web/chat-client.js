// The chat's protocol client: a WebSocket session with one room, as
// docs/protocol.md describes it ("Reference client"), and nothing of a page.
// It connects, reconnects with capped jittered backoff, sends a heartbeat
// when quiet, asks for history (the latest page, older pages, and after a
// reconnect the pages that close the gap), keeps who is online from
// `welcome` and `presence`, shows each message once by `message_id`, and
// follows moderation (`welcome.moderator`, `deleted`, `removed`). What it
// learns it tells through events (`on`); whoever listens draws it.
//
// The WebSocket constructor, the timers, the clock and the randomness are
// injected (the page's own by default), so Node can drive it with fakes.
// A classic script (file:// refuses module scripts) after chat-rules.js: in
// a page it is `Chat.Client`, in Node `require('./chat-client.js')`.
(function () {
  'use strict';

  const inNode = typeof module === 'object' && module.exports;
  const rules = inNode ? require('./chat-rules.js') : globalThis.Chat.rules;
  const { str, isRecord, nameOf } = rules;

  // A socket's readyState once open (WebSocket.OPEN), also for stand-ins.
  const OPEN = 1;
  // Reconnect delays: 0.5–1 s, 1–2 s, 2–4 s, … 15–30 s.
  const RECONNECT_BASE_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  // A connection that stayed open this long resets the backoff.
  const STABLE_CONNECTION_MS = 10000;
  // A heartbeat goes only after this long without anything sent: API
  // Gateway closes a connection idle for 10 minutes, and every heartbeat is
  // two billed messages and a Lambda invocation (docs/web.md, "Heartbeat").
  // The server's own value (its /config.json), when known, is better.
  const DEFAULT_HEARTBEAT_MS = 300000;
  // How often a heartbeat being due is checked, at most: a tab in the
  // background may run it up to a minute late, well inside the 10.
  const HEARTBEAT_CHECK_MS = 15000;
  // History (a page is the server's default size, `history_default_limit`):
  // how long to wait for an answer; how many pages a reconnect reads back to
  // close the gap since the last one; how long to wait for `welcome` before
  // asking anyway.
  const HISTORY_TIMEOUT_MS = 15000;
  const GAP_PAGES = 4;
  const WELCOME_WAIT_MS = 3000;
  // Presence and message keys, and deleted message ids, remembered at most.
  const REMEMBERED = 5000;
  // Texts sent before `welcome`, kept to recognise their echo.
  const PENDING_MAX = 100;
  // Error codes that refuse a chat message: nothing was stored, so its
  // text may be given back to fix and send again.
  const REJECTED_MESSAGE = ['message_too_long', 'empty_message', 'invalid_message', 'internal'];

  // Wrapped: a browser's timer functions refuse to be called on another object.
  const globalTimers = {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (id) => clearTimeout(id),
    setInterval: (fn, ms) => setInterval(fn, ms),
    clearInterval: (id) => clearInterval(id),
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
      room, // the room whose history this is
      started: false, // a first page arrived: `older` is known
      older: null, // cursor of the next older page; null at the beginning
      trimmed: false, // the caller dropped its oldest lines: no older pages
      error: '', // why the last older page failed
      unsupported: false, // the server does not know the `history` action
      request: null, // the one history request in flight
    };
  }

  // Each socket's share of the history: its latest page, and after a
  // reconnect the pages back to what was already had. `status` says where
  // it is: loading, joined (a first page), empty (a room with no history),
  // reconnected (missed messages found), nothing-missed, none (the server
  // keeps no history) or failed (`why`; '' when the socket closed first).
  function newSegment(reconnect) {
    return { reconnect, asked: false, pages: 0, missed: 0, status: 'loading', why: '' };
  }

  function isChatFrame(item) {
    return isRecord(item) && (item.type === 'message' || item.type === undefined);
  }

  class ChatClient {
    /**
     * options (all optional): `WebSocket` (a constructor), `timers`
     * ({setTimeout, clearTimeout, setInterval, clearInterval}), `now` (ms
     * since the epoch), `random` (in [0, 1)), `heartbeatMs`, and
     * `historySpace(kind, reconnect)`: how many messages the caller can
     * take in a page of `kind` (`latest`, `gap` or `older`), for a caller
     * that shows a bounded number of lines.
     */
    constructor(options = {}) {
      // Without one, the global WebSocket as it is when a socket is made
      // (a test harness may replace it after the page loaded).
      this.WebSocket = options.WebSocket || null;
      this.timers = options.timers || globalTimers;
      this.now = options.now || (() => Date.now());
      this.random = options.random || Math.random;
      this.heartbeatMs = options.heartbeatMs || DEFAULT_HEARTBEAT_MS;
      this.historySpace = options.historySpace || (() => Infinity);
      this.listeners = new Map();

      // Where to connect; the token goes into the socket's URL only.
      this.url = '';
      this.room = '';
      this.name = '';
      this.token = '';
      this.wanted = false; // a connection is wanted: unexpected closes reconnect
      this.phase = 'disconnected'; // connecting | connected | reconnecting | error (failed, retrying) | disconnected
      this.ws = null; // the socket being opened or open
      this.openedAt = 0; // when it opened; 0 while not open
      this.attempt = 0; // reconnects since the last stable connection
      this.reconnectAt = 0;
      this.reconnectTimer = null;
      this.heartbeatTimer = null;
      this.welcomeTimer = null;
      this.lastSentAt = 0;
      this.lastSent = ''; // the last chat message, until it is taken back
      this.pings = 0;
      this.pongs = 0;
      this.reconnects = 0;
      this.historyRequests = 0;

      this.ownId = ''; // this socket's connection id, from `welcome`
      this.ownIds = new Set(); // every connection id this client has had
      this.others = new Set(); // connection ids known to be someone else's
      this.pending = []; // texts sent on this socket before its `welcome`
      this.seen = new Set(); // presence and message keys already handled
      this.online = newOnline(); // who is in the room, for this socket
      this.moderator = false; // this socket's welcome said it may moderate
      this.deleted = new Map(); // message id -> who deleted it (`by`)
      this.removed = null; // {room, reason, bannedUntil} once a moderator removed this socket
      this.history = newHistory('');
      this.segment = null; // the current socket's
    }

    on(type, listener) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(listener);
      return this;
    }

    emit(type, detail) {
      for (const listener of this.listeners.get(type) || []) listener(detail);
    }

    get isOpen() {
      return this.ws !== null && this.ws.readyState === OPEN;
    }

    // Connected, connecting, or waiting to reconnect.
    get active() {
      return this.ws !== null || this.reconnectTimer !== null;
    }

    get reconnecting() {
      return this.reconnectTimer !== null;
    }

    isOwn(connectionId) {
      return connectionId !== '' && this.ownIds.has(connectionId);
    }

    // ------------------------------------------------------ connection

    /** Connects to `url` (ws:// or wss://) in `room`; false if already active. */
    connect({ url, room, name = '', token = '' }) {
      if (this.active) return false; // never a second socket
      if (room !== this.history.room) this.resetRoom(room);
      this.setTarget(url, room, name, token);
      this.wanted = true;
      this.attempt = 0;
      this.open();
      return true;
    }

    /**
     * While active, moves to another room, name or token: the socket is
     * replaced (the room's state too when the room changes). False when
     * not active or nothing changed.
     */
    rejoin({ room, name = '', token = '' }) {
      if (!this.active || (room === this.room && name === this.name && token === this.token)) return false;
      const roomChanged = room !== this.room;
      const why = roomChanged ? 'Changing room' : token !== this.token ? 'Changing token' : 'Changing name';
      this.cancelReconnect();
      this.closeSocket(why);
      if (roomChanged) this.resetRoom(room);
      this.setTarget(this.url, room, name, token);
      this.attempt = 0;
      this.open();
      return true;
    }

    /** A deliberate close: no reconnect. Whether there was a socket. */
    disconnect(reason = 'Closed by the user') {
      this.wanted = false;
      this.cancelReconnect();
      const hadSocket = this.closeSocket(reason);
      this.phase = 'disconnected';
      return hadSocket;
    }

    /** A reconnect that is waiting happens now (the network came back). */
    retryNow() {
      if (!this.reconnecting) return;
      this.cancelReconnect();
      if (!this.wanted || this.ws !== null) return;
      this.reconnects += 1;
      this.open();
    }

    setHeartbeatMs(ms) {
      this.heartbeatMs = ms;
      if (this.heartbeatTimer !== null) this.startHeartbeat();
    }

    setTarget(url, room, name, token) {
      this.url = url;
      this.room = room;
      this.name = name;
      this.token = token;
    }

    open() {
      this.removed = null;
      const url = rules.socketUrl(this.url, this.room, this.name, this.token);
      let ws;
      try {
        ws = new (this.WebSocket || globalThis.WebSocket)(url);
      } catch (error) {
        // Bad URL, or ws:// from an https:// page. The browser's message may
        // quote the URL, which holds the token: never passed on with it.
        this.wanted = false;
        this.phase = 'error';
        let why = error && error.message ? error.message : 'cannot open this URL';
        if (this.token) why = why.split(url).join(this.url).split(this.token).join('…');
        this.emit('openFailed', { why });
        return;
      }
      this.ws = ws;
      this.phase = 'connecting';
      this.emit('connecting', { attempt: this.attempt });
      ws.addEventListener('open', () => {
        if (ws === this.ws) this.onOpen();
      });
      ws.addEventListener('message', (event) => {
        if (ws === this.ws) this.onFrame(event.data);
      });
      ws.addEventListener('close', (event) => {
        if (ws === this.ws) this.onClose(event);
      });
    }

    onOpen() {
      this.openedAt = this.now();
      this.ownId = '';
      this.pending = [];
      this.segment = newSegment(this.history.started);
      this.startHeartbeat();
      this.welcomeTimer = this.timers.setTimeout(() => this.askLatest(), WELCOME_WAIT_MS);
      this.phase = 'connected';
      this.emit('open', { segment: this.segment });
    }

    // `close` tells what happened and, when a reconnect is scheduled, in
    // how long (`retryIn`, ms; null when none is).
    onClose(event) {
      const wasOpen = this.openedAt !== 0;
      const openFor = wasOpen ? this.now() - this.openedAt : 0;
      this.teardown();
      const close = { code: event.code, reason: event.reason || '', wasOpen, removed: this.removed, retryIn: null };
      if (this.removed || !this.wanted) {
        this.phase = 'disconnected';
      } else {
        if (wasOpen && openFor >= STABLE_CONNECTION_MS) this.attempt = 0;
        const failed = !wasOpen || event.code === 1006 || event.code === 1009 || event.code === 1011;
        close.retryIn = this.scheduleReconnect();
        this.phase = failed ? 'error' : 'reconnecting';
      }
      this.emit('close', close);
    }

    // Capped exponential backoff with jitter: the upper half of the
    // doubling ceiling, so clients that lost the server together spread out.
    scheduleReconnect() {
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempt);
      const delay = Math.round(ceiling / 2 + this.random() * (ceiling / 2));
      this.attempt += 1;
      this.reconnectAt = this.now() + delay;
      this.reconnectTimer = this.timers.setTimeout(() => this.retryNow(), delay);
      return delay;
    }

    cancelReconnect() {
      if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }

    // Forgets the current socket and what belongs to it (not the session),
    // and closes it with 1000; whether there was one.
    closeSocket(reason) {
      const ws = this.ws;
      this.teardown();
      if (ws) ws.close(1000, reason);
      return ws !== null;
    }

    teardown() {
      this.stopHeartbeat();
      this.timers.clearTimeout(this.welcomeTimer);
      this.welcomeTimer = null;
      this.moderator = false;
      if (this.segment && this.segment.status === 'loading') this.setSegment(this.segment, 'failed', '');
      this.clearHistoryRequest();
      this.ws = null;
      this.openedAt = 0;
      this.ownId = '';
      this.pending = [];
      this.online = newOnline();
      this.emit('teardown');
    }

    // A new room: nothing of the last one's history, presence or people.
    resetRoom(room) {
      this.clearHistoryRequest();
      this.seen.clear();
      this.others.clear();
      this.segment = null;
      this.history = newHistory(room);
      this.emit('reset', { room });
    }

    // -------------------------------------------------------- sending

    sendFrame(frame) {
      if (!this.isOpen) return false;
      this.ws.send(JSON.stringify(frame));
      this.lastSentAt = this.now();
      return true;
    }

    /** Sends a chat message as it is (rules.messageProblem checks it first); false when not open. */
    sendMessage(text) {
      if (!this.sendFrame({ action: 'sendmessage', message: text })) return false;
      // Our echo can overtake our `welcome`: until it comes, a text sent
      // here is recognised as ours by its text.
      if (!this.ownId) {
        this.pending.push(text);
        if (this.pending.length > PENDING_MAX) this.pending.shift();
      }
      this.lastSent = text;
      return true;
    }

    /** The last message sent, taken back once the server refused it: '' when none. */
    takeBackLast() {
      const text = this.lastSent;
      this.lastSent = '';
      const index = text ? this.pending.indexOf(text) : -1;
      if (index !== -1) this.pending.splice(index, 1);
      return text;
    }

    remove(connectionId, reason = '') {
      const frame = { action: 'remove', connection_id: connectionId };
      if (reason) frame.reason = reason;
      return this.sendFrame(frame);
    }

    ban(connectionId, minutes, reason = '') {
      const frame = { action: 'ban', connection_id: connectionId };
      if (reason) frame.reason = reason;
      frame.minutes = minutes;
      return this.sendFrame(frame);
    }

    deleteMessage(messageId) {
      return this.sendFrame({ action: 'delete', message_id: messageId });
    }

    // ------------------------------------------------------- heartbeat

    // A ping once nothing was sent for `heartbeatMs`: a chatting client
    // never sends one (its own frames keep the connection alive).
    startHeartbeat() {
      this.stopHeartbeat();
      this.lastSentAt = this.now();
      this.heartbeatTimer = this.timers.setInterval(() => {
        if (this.now() - this.lastSentAt < this.heartbeatMs) return;
        if (this.sendFrame({ action: 'ping' })) {
          this.pings += 1;
          this.emit('ping');
        }
      }, Math.min(this.heartbeatMs, HEARTBEAT_CHECK_MS));
    }

    stopHeartbeat() {
      if (this.heartbeatTimer !== null) this.timers.clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }

    // --------------------------------------------------------- history
    //
    // The first socket's latest page starts the room's history; older
    // pages continue from its cursor until it is null. A later socket (a
    // reconnect) reads back until it meets a message already had, to fill
    // in what was said while it was away. One request is in flight at a
    // time (the protocol has no request ids).

    requestHistory(kind, before, segment) {
      const h = this.history;
      if (h.request || h.unsupported || !this.isOpen) return false;
      const limit = Math.min(rules.limits.history_default_limit, this.historySpace(kind, Boolean(segment && segment.reconnect)));
      if (!(limit >= 1)) return false;
      const frame = { action: 'history', limit };
      if (before) frame.before = before;
      if (!this.sendFrame(frame)) return false;
      h.request = {
        kind,
        segment,
        ws: this.ws,
        timer: this.timers.setTimeout(() => this.historyFailed('no answer from the server'), HISTORY_TIMEOUT_MS),
      };
      this.historyRequests += 1;
      this.emit('historyChange');
      return true;
    }

    clearHistoryRequest() {
      const request = this.history.request;
      if (request) this.timers.clearTimeout(request.timer);
      this.history.request = null;
    }

    // After `welcome` (or, should it be slow, a little while after the
    // socket opened): the latest page.
    askLatest() {
      this.timers.clearTimeout(this.welcomeTimer);
      this.welcomeTimer = null;
      const segment = this.segment;
      if (!segment || segment.asked || !this.isOpen) return;
      if (this.history.unsupported) {
        segment.asked = true;
        this.setSegment(segment, 'none');
        return;
      }
      segment.asked = this.requestHistory('latest', null, segment);
    }

    /** The next older page, if there is one to ask for: whether it was asked for. */
    loadOlder() {
      const h = this.history;
      h.error = '';
      if (!h.started || h.trimmed || h.older === null || h.request || !this.isOpen) return false;
      return this.requestHistory('older', h.older, null);
    }

    /** The caller dropped its oldest lines: older pages would have nothing to join. */
    historyTrimmed() {
      this.history.trimmed = true;
    }

    setSegment(segment, status, why = '') {
      segment.status = status;
      segment.why = why;
      this.emit('segment', segment);
    }

    // `historyPage` hands on the messages not had yet, oldest first: an
    // older page's go on top of everything; a socket's own pages go above
    // its first line (and anything they placed).
    onHistory(frame) {
      const h = this.history;
      const request = h.request;
      if (!request || request.ws !== this.ws) return; // not asked for: nothing to place it by
      this.clearHistoryRequest();
      if (typeof frame.room === 'string' && frame.room !== h.room) return; // never another room's
      const page = Array.isArray(frame.messages) ? frame.messages.filter(isChatFrame) : [];
      const cursor = typeof frame.cursor === 'string' && frame.cursor !== '' ? frame.cursor : null;
      // Newest first on the wire.
      const chronological = page.slice().reverse();
      const fresh = chronological.filter((m) => {
        const id = str(m.message_id);
        return id === '' || !this.seen.has(`message:${id}`);
      });
      const overlap = fresh.length < chronological.length;

      if (request.kind === 'older') {
        if (h.trimmed) {
          this.emit('historyChange'); // the top it belonged above is gone
          return;
        }
        this.rememberMessages(fresh);
        h.older = cursor;
        this.emit('historyPage', { kind: 'older', segment: null, messages: fresh, cursor });
        return;
      }

      const segment = request.segment;
      if (segment !== this.segment) return;
      segment.pages += 1;
      segment.missed += fresh.length;
      this.rememberMessages(fresh);
      this.emit('historyPage', { kind: request.kind, segment, messages: fresh, cursor });
      if (!segment.reconnect) {
        h.started = true;
        h.older = cursor;
        this.setSegment(segment, page.length === 0 ? 'empty' : 'joined');
        return;
      }
      if (!overlap && cursor !== null) {
        if (segment.pages < GAP_PAGES && !h.trimmed && this.requestHistory('gap', cursor, segment)) return;
        this.emit('gapUnfilled', { segment });
      }
      this.setSegment(segment, segment.missed > 0 ? 'reconnected' : 'nothing-missed');
    }

    historyFailed(why) {
      const request = this.history.request;
      if (!request) return;
      this.clearHistoryRequest();
      if (request.kind === 'older') this.history.error = why;
      else if (request.segment && request.segment === this.segment) this.setSegment(request.segment, 'failed', why);
      this.emit('historyChange');
    }

    // Is this `error` frame the answer to the history request in flight?
    historyError(frame) {
      const request = this.history.request;
      if (!request) return false;
      const code = str(frame.code);
      const message = str(frame.message);
      if (code === 'unknown_action') {
        // A server without the `history` action (the tutorial's own) names
        // the actions it has; an unknown action error that lists `history`
        // answers something else.
        const valid = Array.isArray(frame.valid_actions) ? frame.valid_actions : [];
        if (valid.length === 0 || valid.includes('history')) return false;
        this.history.unsupported = true;
        this.clearHistoryRequest();
        if (request.segment && request.segment === this.segment) this.setSegment(request.segment, 'none');
        this.emit('historyChange');
        return true;
      }
      const refusedPage = code === 'rate_limited' && frame.action === 'history';
      if (refusedPage || code === 'invalid_cursor' || code === 'invalid_limit' || (code === 'internal' && /history/i.test(message))) {
        this.historyFailed(message || code);
        return true;
      }
      return false;
    }

    // ---------------------------------------------------------- frames

    // Messages and presence are delivered at least once: each is handled once.
    firstTime(key) {
      if (this.seen.has(key)) return false;
      this.remember(key);
      return true;
    }

    remember(key) {
      this.seen.add(key);
      if (this.seen.size > REMEMBERED) {
        // Sets iterate in insertion order: forget the oldest half.
        let drop = REMEMBERED / 2;
        for (const old of this.seen) {
          this.seen.delete(old);
          if (--drop === 0) break;
        }
      }
    }

    rememberMessages(messages) {
      for (const message of messages) {
        const id = str(message.message_id);
        if (id) this.remember(`message:${id}`);
      }
    }

    // A frame that names a room other than this socket's is never shown.
    otherRoom(frame) {
      return typeof frame.room === 'string' && this.room !== '' && frame.room !== this.room;
    }

    onFrame(data) {
      // API Gateway sends a two-way route's body-less reply as an empty
      // frame: nothing to tell.
      if (typeof data === 'string' && data.trim() === '') return;
      let frame = null;
      try {
        frame = JSON.parse(data);
      } catch (_) {
        // told as text below
      }
      if (!isRecord(frame)) {
        this.emit('serverText', { text: String(data) });
        return;
      }
      switch (frame.type) {
        case 'message':
          if (!this.otherRoom(frame)) this.onMessage(frame);
          break;
        case 'history':
          this.onHistory(frame);
          break;
        case 'welcome':
          this.onWelcome(frame);
          break;
        case 'presence':
          if (!this.otherRoom(frame)) this.onPresence(frame);
          break;
        case 'pong':
          this.pongs += 1;
          this.emit('pong');
          break;
        case 'deleted':
          if (!this.otherRoom(frame)) this.onDeleted(frame);
          break;
        case 'removed':
          if (!this.otherRoom(frame)) this.onRemoved(frame);
          break;
        case 'moderated':
          this.emit('moderated', { frame });
          break;
        case 'error':
          this.onError(frame);
          break;
        default:
          // e.g. API Gateway's own {"message":"Internal server error",...}
          if (typeof frame.message === 'string') this.emit('notice', { frame });
      }
    }

    onMessage(frame) {
      const id = str(frame.message_id);
      if (id && !this.firstTime(`message:${id}`)) return;
      const sender = str(frame.connection_id);
      const text = typeof frame.text === 'string' ? frame.text : str(frame.message);
      let own = this.isOwn(sender);
      if (!own && !this.ownId && sender !== '' && !this.others.has(sender)) {
        const index = this.pending.indexOf(text);
        if (index !== -1) {
          this.pending.splice(index, 1);
          own = true;
        }
      }
      this.emit('message', { frame, own });
    }

    onWelcome(frame) {
      const id = str(frame.connection_id);
      if (!id || id === this.ownId) return;
      this.ownId = id;
      this.ownIds.add(id);
      this.others.delete(id);
      this.pending = [];
      this.moderator = frame.moderator === true;
      const room = typeof frame.room === 'string' ? frame.room : this.room;
      this.emit('welcome', { id, name: nameOf(frame), room, moderator: this.moderator });
      this.welcomeOnline(frame, id);
      this.askLatest();
    }

    // `presence`: who joined and who left the room since the last one, at
    // most about one a second per room. Delivered at least once, so a join
    // or a leave may come again: each is told once and changes the online
    // list once. A crowd's frame (it carries `online`) names only a few of
    // each: who is here comes from its `online` and `online_count`, and
    // nobody's coming and going is told one by one.
    onPresence(frame) {
      const joined = Array.isArray(frame.joined) ? frame.joined : null;
      const left = Array.isArray(frame.left) ? frame.left : null;
      if (joined === null && left === null) {
        if (typeof frame.message === 'string') this.emit('notice', { frame });
        return;
      }
      const crowd = Array.isArray(frame.online);
      for (const member of joined || []) {
        if (isRecord(member)) this.onJoined(member, crowd);
      }
      for (const departure of left || []) {
        if (isRecord(departure)) this.onLeft(departure, crowd);
      }
      if (crowd) this.crowdOnline(frame);
      this.emit('online', this.online);
    }

    onJoined(member, quietly = false) {
      const id = str(member.connection_id);
      if (!id) return;
      // Someone the welcome already listed was here before us: no news.
      const listed = this.online.known && this.online.members.has(id);
      this.addOnline(id, nameOf(member));
      if (quietly || listed || this.ownIds.has(id) || !this.firstTime(`joined:${id}`)) return;
      this.others.add(id);
      this.emit('joined', { id, name: nameOf(member) });
    }

    // `left` carries the departure as the server sent it (its `removed`,
    // `duration_seconds`); `id` may be an earlier connection of this client.
    onLeft(departure, quietly = false) {
      const id = str(departure.connection_id);
      if (!id) return;
      this.removeOnline(id);
      if (quietly || !this.firstTime(`left:${id}`)) return;
      this.emit('left', { id, name: nameOf(departure), departure });
    }

    // The welcome lists who is in the room (the newcomer included, at most
    // 200, `online_count` in all); presence frames add and remove people by
    // connection id. A leave is remembered, so a repeated join of someone
    // who left never brings them back.
    welcomeOnline(frame, ownId) {
      const online = this.online; // may hold presence that came before the welcome
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
      this.emit('online', online);
    }

    // A crowd's presence frame: who is here now (a few, `online_count` in
    // all) in place of the list kept so far, yourself first; nobody who has
    // left comes back (the room index may lag a leave by a moment).
    crowdOnline(frame) {
      const online = this.online;
      const members = new Map();
      if (this.ownId && online.members.has(this.ownId)) members.set(this.ownId, online.members.get(this.ownId));
      for (const member of frame.online.filter(isRecord)) {
        const id = str(member.connection_id);
        if (id && !online.gone.has(id) && !members.has(id)) members.set(id, nameOf(member));
      }
      online.members = members;
      const count = Number.isInteger(frame.online_count) ? frame.online_count : null;
      if (count !== null) online.known = count > 0;
      online.unlisted = online.known && count !== null ? Math.max(0, count - members.size) : 0;
    }

    addOnline(id, name) {
      if (!this.online.gone.has(id)) this.online.members.set(id, name);
    }

    removeOnline(id) {
      const online = this.online;
      if (online.gone.has(id)) return;
      online.gone.add(id);
      if (online.gone.size > REMEMBERED) online.gone.delete(online.gone.values().next().value);
      // Someone not listed leaves: one fewer of those the count alone told of.
      if (!online.members.delete(id) && online.unlisted > 0) online.unlisted -= 1;
    }

    // `deleted`: kept, since the message may come again (at least once)
    // from a page loaded before the deletion.
    onDeleted(frame) {
      const id = str(frame.message_id);
      if (!id) return;
      const by = str(frame.by);
      this.deleted.set(id, by);
      if (this.deleted.size > REMEMBERED) this.deleted.delete(this.deleted.keys().next().value);
      this.emit('deleted', { id, by });
    }

    // `removed`: a moderator took this socket out of the room; it is
    // closed next, and not reconnected.
    onRemoved(frame) {
      this.removed = {
        room: typeof frame.room === 'string' ? frame.room : this.room,
        reason: str(frame.reason),
        bannedUntil: typeof frame.banned_until === 'string' ? frame.banned_until : null,
      };
      this.wanted = false;
      this.cancelReconnect();
      this.emit('removed', this.removed);
    }

    onError(frame) {
      if (this.historyError(frame)) return;
      const code = str(frame.code);
      this.emit('error', { frame, code, rejected: REJECTED_MESSAGE.includes(code) });
    }
  }

  if (inNode) module.exports = ChatClient;
  else globalThis.Chat.Client = ChatClient;
}());

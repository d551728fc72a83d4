// The chat's browser client. Plain script, no build step, no dependencies.
//
// Everything a user or another user typed reaches the page through
// `textContent` only: nothing here parses HTML.
//
// Query parameters (for tests and debugging):
//   ?heartbeat=SECONDS   heartbeat interval (default 30)
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
  const STORAGE = {
    url: 'chat.websocketUrl',
    connectOnLoad: 'chat.connectOnLoad',
    autoDisconnect: 'chat.autoDisconnect',
    autoDisconnectSecs: 'chat.autoDisconnectSecs',
  };

  const params = new URLSearchParams(window.location.search);
  const HEARTBEAT_MS = Math.round(numberParam('heartbeat', 30, 0.1) * 1000);
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
    autoDisconnect: $('auto-disconnect'),
    autoDisconnectSecs: $('auto-disconnect-secs'),
    autoDisconnectFact: $('auto-disconnect-fact'),
    autoDisconnectLeft: $('auto-disconnect-left'),
    connectedAt: $('connected-at'),
    duration: $('duration'),
    me: $('me'),
    log: $('log'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    counter: $('counter'),
    sendError: $('send-error'),
  };

  const encoder = new TextEncoder();

  const state = {
    ws: null, // the socket being opened or open; null otherwise
    url: '', // the URL this session keeps connecting to
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
    autoTimer: 0,
    autoAt: 0,
    maxBytes: DEFAULT_MAX_MESSAGE_BYTES,
    seen: new Set(), // presence and message keys already shown
    pings: 0,
    pongs: 0,
    reconnects: 0,
  };

  // ---------------------------------------------------------------- helpers

  function numberParam(name, fallback, min) {
    const raw = params.get(name);
    if (raw === null || raw.trim() === '') return fallback;
    const value = Number(raw);
    return Number.isFinite(value) && value >= min ? value : fallback;
  }

  const storage = {
    get(key) {
      try {
        return window.localStorage.getItem(key);
      } catch (_) {
        return null; // storage disabled (privacy mode, some file:// pages)
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch (_) {
        /* nothing to remember with */
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
    return true;
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

  function render() {
    const now = Date.now();
    const [announced, countdown] = statusText();
    // Rewritten only when they change, so screen readers hear each change once.
    if (ui.status.textContent !== announced) ui.status.textContent = announced;
    if (ui.countdown.textContent !== countdown) ui.countdown.textContent = countdown;
    ui.app.dataset.state = state.phase;
    ui.dot.className = `dot ${state.phase}`;

    const active = state.ws !== null || state.reconnectTimer !== 0;
    ui.connect.disabled = active;
    ui.disconnect.disabled = !active;
    ui.url.readOnly = active;

    if (state.openedAt) {
      ui.connectedAt.textContent = utcDateTime(state.openedAt);
      ui.duration.textContent = elapsed(now - state.openedAt);
    } else {
      ui.connectedAt.textContent = '—';
      ui.duration.textContent = '—';
    }
    ui.me.textContent = state.ownId || '—';

    if (state.autoTimer) {
      ui.autoDisconnectFact.hidden = false;
      ui.autoDisconnectLeft.textContent = `in ${Math.max(0, Math.ceil((state.autoAt - now) / 1000))} s`;
    } else {
      ui.autoDisconnectFact.hidden = true;
    }
    renderComposer();
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

  // The log follows new lines while the reader is at its end, and stays put
  // while they scroll back.
  let following = true;

  function nearBottom() {
    const log = ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  }

  function followEnd() {
    if (following) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function append(li) {
    ui.log.appendChild(li);
    while (ui.log.childElementCount > MAX_LINES) ui.log.firstElementChild.remove();
    followEnd();
  }

  function addSystem(text, kind) {
    const li = document.createElement('li');
    li.className = kind ? `system ${kind}` : 'system';
    li.textContent = text;
    append(li);
    return li;
  }

  function markLine(li, own) {
    const sender = li.dataset.sender || '';
    li.classList.toggle('own', own);
    li.classList.toggle('other', !own);
    const who = li.querySelector('.who');
    const id = li.querySelector('.sender-id');
    who.textContent = own ? 'You' : sender || 'unknown sender';
    id.textContent = own && sender ? sender : '';
    id.hidden = !(own && sender);
  }

  function addMessage(frame, own) {
    const li = document.createElement('li');
    li.className = 'msg';
    li.dataset.sender = str(frame.connection_id);
    if (frame.message_id) li.dataset.messageId = str(frame.message_id);

    const meta = document.createElement('p');
    meta.className = 'meta';
    const who = document.createElement('span');
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
    markLine(li, own);
    append(li);
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
  }

  // Presence and messages are delivered at least once: show each once.
  function firstTime(key) {
    if (state.seen.has(key)) return false;
    state.seen.add(key);
    if (state.seen.size > 5000) {
      // Sets iterate in insertion order: forget the oldest half.
      let drop = 2500;
      for (const old of state.seen) {
        state.seen.delete(old);
        if (--drop === 0) break;
      }
    }
    return true;
  }

  // ------------------------------------------------------------ connection

  function connect(url) {
    if (state.ws !== null || state.reconnectTimer) {
      // Already connected or connecting: never a second socket.
      return;
    }
    url = url.trim();
    if (!validWebSocketUrl(url)) {
      setPhase('error', 'enter a ws:// or wss:// URL');
      ui.url.focus();
      return;
    }
    ui.url.value = url;
    storage.set(STORAGE.url, url);
    storage.set(STORAGE.connectOnLoad, 'true');
    state.url = url;
    state.wanted = true;
    state.attempt = 0;
    open();
  }

  function open() {
    let ws;
    try {
      ws = new WebSocket(state.url);
    } catch (error) {
      // Bad URL, or ws:// from an https:// page.
      state.wanted = false;
      setPhase('error', error && error.message ? error.message : 'cannot open this URL');
      return;
    }
    state.ws = ws;
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
    addSystem(`Connected to ${state.url} at ${utcDateTime(state.openedAt)}.`);
    startHeartbeat();
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
    if (!state.wanted) {
      setPhase('disconnected', `closed (${why}${reason})`);
      return;
    }
    if (wasOpen && openFor >= STABLE_CONNECTION_MS) state.attempt = 0;
    const failed = !wasOpen || event.code === 1006 || event.code === 1009 || event.code === 1011;
    const detail = wasOpen ? `connection closed (${why})` : 'could not connect';
    const delay = scheduleReconnect();
    addSystem(`${wasOpen ? 'Connection closed' : 'Could not connect'} (${why}${reason}). Reconnecting in ${Math.ceil(delay / 1000)} s…`, 'warn');
    setPhase(failed ? 'error' : 'reconnecting', detail);
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
    state.ws = null;
    state.openedAt = 0;
    state.ownId = '';
    state.pending = [];
    delete ui.app.dataset.openedAt;
    counters();
  }

  // A deliberate close: never reconnects. `why` is empty when the user
  // pressed Disconnect.
  function disconnect(why, byUser) {
    state.wanted = false;
    window.clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    if (byUser) storage.set(STORAGE.connectOnLoad, 'false');
    const ws = state.ws;
    const wasOpen = state.openedAt !== 0;
    teardownSocket();
    if (ws) ws.close(1000, why || 'Closed by the user');
    if (wasOpen || ws) addSystem(why ? `Disconnected: ${why}.` : 'Disconnected.');
    ui.app.dataset.lastClose = '1000';
    setPhase('disconnected', why);
  }

  // -------------------------------------------------------------- heartbeat

  function startHeartbeat() {
    stopHeartbeat();
    state.heartbeatTimer = window.setInterval(() => {
      if (sendFrame({ action: 'ping' })) {
        state.pings += 1;
        counters();
      }
    }, HEARTBEAT_MS);
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
        onMessage(frame);
        break;
      case 'welcome':
        onWelcome(frame);
        break;
      case 'joined':
        onJoined(frame);
        break;
      case 'left':
        onLeft(frame);
        break;
      case 'pong':
        state.pongs += 1;
        counters();
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
    counters();
    remarkOwnLines();
    addSystem(`Welcome! You are ${id}.`);
    render();
  }

  function onJoined(frame) {
    const id = str(frame.connection_id);
    if (!id || state.ownIds.has(id) || !firstTime(`joined:${id}`)) return;
    state.others.add(id);
    addSystem(`${id} joined.`, 'presence');
  }

  function onLeft(frame) {
    const id = str(frame.connection_id);
    if (!id || !firstTime(`left:${id}`)) return;
    const duration = humanSeconds(Number(frame.duration_seconds));
    const who = state.ownIds.has(id) ? `You (earlier connection ${id})` : id;
    addSystem(duration ? `${who} left after ${duration}.` : `${who} left.`, 'presence');
  }

  function onError(frame) {
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
    connect(ui.url.value);
  });
  ui.disconnect.addEventListener('click', () => disconnect('', true));
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
  ui.log.addEventListener('scroll', () => {
    following = nearBottom();
  }, { passive: true });
  if (typeof ResizeObserver === 'function') new ResizeObserver(followEnd).observe(ui.log);
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

  function start() {
    const remembered = storage.get(STORAGE.url) || '';
    if (remembered) ui.url.value = remembered;
    ui.autoDisconnect.checked = storage.get(STORAGE.autoDisconnect) === 'true';
    const secs = Number(storage.get(STORAGE.autoDisconnectSecs));
    if (Number.isInteger(secs) && secs >= 1) ui.autoDisconnectSecs.value = String(secs);
    counters();
    render();
    window.setInterval(render, TICK_MS);

    if (remembered && validWebSocketUrl(remembered) && storage.get(STORAGE.connectOnLoad) !== 'false') {
      connect(remembered);
    }

    loadConfig().then((config) => {
      if (config && typeof config === 'object') {
        const url = str(config.websocket_url);
        if (url && validWebSocketUrl(url) && ui.url.value === '' && !state.wanted) {
          ui.url.value = url;
        }
        setMaxBytes(config.max_message_bytes);
        // Served by the local stack, which also serves the metrics dashboard.
        $('dashboard-link').hidden = false;
      }
      ui.app.dataset.ready = 'true';
    });
  }

  start();
}());

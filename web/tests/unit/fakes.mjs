// Stand-ins for what the protocol client gets injected: a clock with
// timers that run only when the test moves time on, and a WebSocket the
// test opens, feeds and closes by hand.

/** A clock and timers; `advance(ms)` runs what falls due, in order. */
export class FakeClock {
  constructor(start = Date.UTC(2026, 10, 28, 0, 0, 0)) {
    this.time = start;
    this.timers = new Map();
    this.lastId = 0;
    this.now = () => this.time;
    this.api = {
      setTimeout: (fn, ms) => this.add(fn, ms, null),
      setInterval: (fn, ms) => this.add(fn, ms, ms),
      clearTimeout: (id) => this.timers.delete(id),
      clearInterval: (id) => this.timers.delete(id),
    };
  }

  add(fn, ms, every) {
    this.lastId += 1;
    this.timers.set(this.lastId, { fn, at: this.time + Math.max(0, ms), every });
    return this.lastId;
  }

  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      const [id, timer] = next;
      this.time = timer.at;
      if (timer.every === null) this.timers.delete(id);
      else timer.at += timer.every;
      timer.fn();
    }
    this.time = end;
  }
}

/** A WebSocket the test drives; every one made is in `FakeSocket.made`. */
export function fakeSocketClass() {
  const made = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.listeners = new Map();
      made.push(this);
    }

    addEventListener(type, listener) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(listener);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      this.readyState = 3;
      this.closedWith = { code, reason };
    }

    fire(type, event) {
      for (const listener of this.listeners.get(type) || []) listener(event);
    }

    // What the server (or the network) does:
    open() {
      this.readyState = 1;
      this.fire('open', {});
    }

    receive(frame) {
      this.fire('message', { data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }

    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.fire('close', { code, reason });
    }

    sentActions(action) {
      return this.sent.filter((frame) => frame.action === action);
    }
  }
  FakeSocket.made = made;
  return FakeSocket;
}

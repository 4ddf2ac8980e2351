// Live events for a page: a minimal socket.io client (protocol 5 over Engine.IO 4, WebSocket only), so
// nothing is fetched from elsewhere and there is no build step. The session cookie goes with the
// handshake and the server authenticates the namespace with it. Loaded after /common/static/page.js by
// the pages that follow a namespace:
//   new LiveEvents("/supervisor", {event(topic, payload), connected(on), refused(message)}).open()
"use strict";

class LiveEvents {
  constructor(namespace, handlers) {
    this.namespace = namespace;
    this.handlers = handlers;   // {event(topic, payload), connected(on), refused(message)}
    this.closed = true;
    this.delay = 1000;
    this.ws = null;
    this.retry = null;
  }

  open() {
    this.closed = false;
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.retry);
    if (this.ws) this.ws.close();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // The session cookie goes with the handshake; the server authenticates the namespace with it.
    const ws = new WebSocket(`${scheme}://${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws = ws;
    ws.onmessage = (message) => this.packet(ws, String(message.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.handlers.connected(false);
      if (this.closed) return;
      this.retry = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
  }

  packet(ws, data) {
    const engineType = data[0];
    if (engineType === "0") { ws.send(`40${this.namespace},{}`); return; }  // open: join the namespace
    if (engineType === "2") { ws.send("3"); return; }                       // ping: pong
    if (engineType !== "4") return;
    const kind = data[1];
    let rest = data.slice(2);
    let namespace = "/";
    if (rest.startsWith("/")) {
      const comma = rest.indexOf(",");
      namespace = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? "" : rest.slice(comma + 1);
    }
    if (namespace !== this.namespace) return;
    rest = rest.replace(/^\d+/, "");  // an ack id, never asked for here
    if (kind === "0") {
      this.delay = 1000;
      this.handlers.connected(true);
    } else if (kind === "4") {
      const refusal = rest ? JSON.parse(rest) : {};
      this.closed = true;
      ws.close();
      this.handlers.refused(refusal.message || "refused");
    } else if (kind === "2") {
      const [topic, payload] = JSON.parse(rest);
      this.handlers.event(topic, payload);
    } else if (kind === "1") {
      ws.close();
    }
  }
}

// Live events of `namespace` for a signed-in page, open at once: `event(topic, payload)` and
// `connected(on)` as above; a refusal goes to `failed` as an error whose status is 401 when the session
// is gone (so the page shows its sign-in form) and 403 otherwise.
function followLive(namespace, event, connected, failed) {
  const live = new LiveEvents(namespace, {
    event,
    connected,
    refused: (message) => failed(Object.assign(new Error(`Live events refused: ${message}`),
                                               { status: message === "authentication required" ? 401 : 403 })),
  });
  live.open();
  return live;
}

// A refresh for a page that reads its state again on each event: `load` runs once at a time, and calls
// made while it runs ask for exactly one more run after it (all of them get that run's promise).
function coalesced(load) {
  let running = null;
  let again = false;
  return function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await load();
      } while (again);
    })().finally(() => { running = null; });
    return running;
  };
}

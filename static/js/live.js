// The restaurant's live feed for a screen: subscribe from the seq the page was
// rendered at, apply events in order, resume after any drop, reset from a snapshot.
// Every message from the server (pongs included) is told to the freshness indicator
// (freshness.js) as a "serveline:stream" event on the document.
const MAX_BACKOFF_MS = 15000;
const DEFAULT_HEARTBEAT_S = 10;  // the server's default, should a welcome not say

function tell(state, heartbeatSeconds) {
  document.dispatchEvent(new CustomEvent("serveline:stream", { detail: { state, heartbeatSeconds } }));
}

// `channels: null` only watches the server (signed in, pinged, no subscription).
export function connectLive({ rid, channels, seq, epoch, onEvent, onReset, onState }) {
  let position = Number(seq);
  let currentEpoch = epoch;
  let attempts = 0;
  let socket = null;
  let ackTimer = null;
  let askedDelay = null;  // the server's own "come back in" on shutdown
  let pinger = null;  // WebSocket pings are invisible to scripts: ask for a pong as often

  function open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/restaurants/${rid}/ws`);
    socket.onmessage = (message) => {
      tell("message");
      handle(JSON.parse(message.data));
    };
    socket.onclose = () => {
      clearInterval(pinger);
      tell("closed");
      onState(false);
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempts) * (0.5 + Math.random() / 2);
      const delay = askedDelay ?? backoff;  // jitter spreads a crowd of screens
      askedDelay = null;
      attempts += 1;
      setTimeout(open, delay);
    };
  }

  function acknowledge() {
    if (ackTimer) return;
    ackTimer = setTimeout(() => {
      ackTimer = null;
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "ack", seq: position }));
      }
    }, 500);
  }

  function handle(message) {
    switch (message.type) {
      case "welcome": {
        const sent = socket;
        clearInterval(pinger);
        pinger = setInterval(() => {
          if (sent.readyState === WebSocket.OPEN) sent.send(JSON.stringify({ type: "ping" }));
        }, (message.heartbeat_s || DEFAULT_HEARTBEAT_S) * 1000);
        tell("open", message.heartbeat_s || DEFAULT_HEARTBEAT_S);
        if (channels === null) {
          attempts = 0;
          onState(true);
        } else {
          socket.send(JSON.stringify({ type: "subscribe", channels, epoch: currentEpoch, since: position }));
        }
        break;
      }
      case "subscribed":
        attempts = 0;
        onState(true);
        break;
      case "event":
        if (message.seq <= position) return;  // already applied
        position = message.seq;
        onEvent(message);
        acknowledge();
        break;
      case "reset":
        currentEpoch = message.epoch;
        position = message.seq;
        onReset(message.snapshot);
        acknowledge();
        break;
      case "reconnect":
        askedDelay = message.after_ms;
        break;
    }
  }

  open();
  return { get position() { return position; }, close: () => socket && socket.close() };
}

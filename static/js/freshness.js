// "Last event N s ago" on every live screen, so a dark screen is never silent. Fed by the
// socket client (live.js) through "serveline:stream" events: any message from the server,
// pongs included, means the stream is alive. Red when nothing came for twice the server's
// ping interval; "offline — reconnecting" while the socket is closed.
const DEFAULT_HEARTBEAT_S = 15;  // until the server's welcome says (2 × 15 s: the 30 s bound)
const POLLING_SCREENS = [".ops"];  // screens that read by polling get a watch-only socket

let indicator = null;
let heartbeatSeconds = DEFAULT_HEARTBEAT_S;
let lastMessageAt = null;
let closed = false;

function show() {
  if (!indicator) {
    indicator = document.createElement("div");
    indicator.id = "freshness";
    indicator.className = "freshness";
    indicator.setAttribute("role", "status");
    indicator.setAttribute("aria-live", "off");  // it changes every second: not read aloud
    document.body.append(indicator);
    setInterval(draw, 1000);
  }
  draw();
}

function draw() {
  const ago = lastMessageAt === null ? null : Math.floor((Date.now() - lastMessageAt) / 1000);
  const bound = 2 * heartbeatSeconds;
  const state = closed ? "offline" : ago === null ? "connecting" : ago > bound ? "stale" : "live";
  indicator.textContent = {
    offline: "offline — reconnecting",
    connecting: "connecting…",
    stale: `last event ${ago} s ago — no news from the server`,
    live: `last event ${ago} s ago`,
  }[state];
  indicator.dataset.state = state;
  indicator.classList.toggle("stale", state === "offline" || state === "stale");
  indicator.title = `Turns red when nothing came from the server for ${bound} s`;
}

document.addEventListener("serveline:stream", ({ detail }) => {
  if (detail.state === "closed") closed = true;
  else {
    closed = false;
    lastMessageAt = Date.now();
    if (detail.heartbeatSeconds) heartbeatSeconds = detail.heartbeatSeconds;
  }
  show();
});

const screen = document.getElementById("screen");
if (screen?.dataset.rid && POLLING_SCREENS.some((selector) => screen.matches(selector))) {
  const { connectLive } = await import("./live.js");
  connectLive({ rid: screen.dataset.rid, channels: null, onState: () => {} });
  show();
}

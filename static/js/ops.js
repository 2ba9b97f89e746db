// The ops page: the API's figures every 5 s, warnings flagged in words, and the
// offline banner (with the figures dimmed) while the server cannot be reached.
const POLL_MS = 5000;
const screen = document.getElementById("screen");
const source = `/api/v1/restaurants/${screen.dataset.rid}/ops`;
const clock = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: screen.dataset.timezone,
});

// Formats shared with templates/ops.html: keep the two in step.
const count = (n) => n.toLocaleString("en-US");
function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
const FORMATS = {
  count, duration,
  text: String,
  updown: (up) => (up ? "Up" : "Down"),
  seq: (n) => `#${count(n)}`,
  ago: (seconds) => `${duration(seconds)} ago`,
  hours: (h) => `${h} h`,
  ms: (value) => `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ms`,
};

function valueAt(ops, path) {
  return path.split(".").reduce((node, key) => (node == null ? node : node[key]), ops);
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function showDevices(devices) {
  const table = document.getElementById("devices-behind");
  const rows = devices.map((d) => {
    const row = document.createElement("tr");
    if (d.alert) row.className = "alert";
    row.append(cell(d.name), cell(d.role), cell(d.alert || (d.online ? "online" : "offline")),
               cell(`${count(d.lag)} events`, "num"));
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const empty = cell("Every device is caught up.", "muted");
    empty.colSpan = 4;
    row.append(empty);
    rows.push(row);
  }
  table.replaceChildren(table.rows[0], ...rows);
}

function showRoles(byRole) {
  const chips = Object.entries(byRole).map(([role, n]) => {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = `${role} ${n}`;
    return chip;
  });
  if (!chips.length) {
    const none = document.createElement("span");
    none.className = "muted";
    none.textContent = "No one subscribed";
    chips.push(none);
  }
  document.getElementById("roles").replaceChildren(...chips);
}

function showConcerns(concerns) {
  for (const card of screen.querySelectorAll("[data-concern]")) {
    const on = concerns.includes(card.dataset.concern);
    card.classList.toggle("warn", on);
    card.querySelector(".flag").hidden = !on;
    card.querySelector(".ops-alert").hidden = !on;
  }
  const summary = document.getElementById("summary");
  summary.classList.toggle("warn", concerns.length > 0);
  summary.classList.toggle("clear", concerns.length === 0);
  summary.textContent = concerns.length === 0 ? "All clear"
    : `${concerns.length} warning${concerns.length > 1 ? "s" : ""}`;
}

function render(ops) {
  ops.outbox.oldest_age = ops.outbox.oldest_at === null ? null
    : Math.max(0, (Date.parse(ops.at) - Date.parse(ops.outbox.oldest_at)) / 1000);
  for (const node of screen.querySelectorAll("[data-key]")) {
    const value = valueAt(ops, node.dataset.key);
    node.textContent = value == null ? node.dataset.none ?? "—"
      : FORMATS[node.dataset.format || "count"](value);
  }
  showRoles(ops.connections.by_role);
  showDevices(ops.devices_behind);
  showConcerns(ops.concerns);
  const asOf = document.getElementById("as-of");
  asOf.dateTime = ops.at;
  asOf.textContent = clock.format(new Date(ops.at));
}

function setOnline(online) {
  document.getElementById("offline").hidden = online;
  screen.classList.toggle("stale", !online);
}

async function poll() {
  try {
    const response = await fetch(source, { credentials: "same-origin", signal: AbortSignal.timeout(POLL_MS - 500) });
    if (response.status === 401) {  // the session ended: sign in again, then come back here
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (!response.ok) throw new Error(`ops answered ${response.status}`);
    render(await response.json());
    setOnline(true);
  } catch {
    setOnline(false);
  }
  setTimeout(poll, POLL_MS);
}

setTimeout(poll, POLL_MS);

// The ops page: the API's figures every 5 s, warnings flagged in words, and the
// offline banner (with the figures dimmed) while the server cannot be reached.
// The route latency and SQL tables are rebuilt from each answer; the trend lines
// keep the last 60 answers in the page (nothing is stored on the server).
const screen = document.getElementById("screen");
const pollMs = () => Number(screen.dataset.pollMs) || 5000;  // read each time: the page says how often
const TIMEOUT_MS = 4500;
const SVG = "http://www.w3.org/2000/svg";
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
  ms: (value) => `${millis(value)} ms`,
  percent: (value) => `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} %`,
  megabytes: (n) => `${Math.round(n / 1e6).toLocaleString("en-US")} MB`,
  ratio: (r) => `${(r * 100).toFixed(1)} %`,
};
function millis(value) {
  return value >= 10 ? value.toFixed(0) : value.toFixed(1);
}
// A restaurant's routes drop their common prefix (the full template is in the row's title)
// and may wrap after each slash.
const PREFIX = "/api/v1/restaurants/{rid}/";
function shortRoute(route) {
  const short = route.startsWith(PREFIX) ? `…${route.slice(PREFIX.length - 1)}` : route;
  return short.split("/").flatMap((part, i, parts) => [
    `${i ? "/" : ""}${part}`, ...(i < parts.length - 1 ? [document.createElement("wbr")] : [])]);
}

function valueAt(ops, path) {
  return path.split(".").reduce((node, key) => (node == null ? node : node[key]), ops);
}

function element(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}
const cell = (text, className = "") => element("td", className, text);

function emptyRow(text, columns) {
  const row = document.createElement("tr");
  const only = cell(text, "muted");
  only.colSpan = columns;
  row.append(only);
  return row;
}

// Route latency: the slowest templates by p99, a bar each for p50, p95 and p99 (one scale).
function showRoutes(routes) {
  const top = Math.max(0, ...routes.map((r) => r.p99_ms));
  const rows = routes.map((r) => {
    const row = document.createElement("tr");
    row.title = `${r.method} ${r.route}: ${count(r.calls)} calls, p50 ${FORMATS.ms(r.p50_ms)}, `
      + `p95 ${FORMATS.ms(r.p95_ms)}, p99 ${FORMATS.ms(r.p99_ms)}`;
    const name = element("th", "route");
    name.scope = "row";
    name.append(element("span", "method", r.method), " ", ...shortRoute(r.route));
    const bars = cell("", "bars");
    bars.setAttribute("aria-hidden", "true");
    const track = element("span", "track");
    for (const level of ["p99", "p95", "p50"]) {
      const meter = element("span", `meter ${level}`);
      meter.style.width = `${top ? ((100 * r[`${level}_ms`]) / top).toFixed(1) : 0}%`;
      track.append(meter);
    }
    bars.append(track);
    row.append(name, cell(count(r.calls), "num calls"), bars, cell(millis(r.p50_ms), "num"),
               cell(millis(r.p95_ms), "num"), cell(millis(r.p99_ms), "num p99"));
    return row;
  });
  document.querySelector("#route-latency tbody")
    .replaceChildren(...(rows.length ? rows : [emptyRow("No requests timed yet.", 6)]));
}

// Slowest SQL: each pattern on one line, opened (and kept open across polls) for the whole text.
function showPatterns(patterns) {
  const body = document.querySelector("#sql-patterns tbody");
  const open = new Set([...body.querySelectorAll("details[open] pre")].map((pre) => pre.textContent));
  const rows = patterns.map((p) => {
    const row = element("tr", p.slow ? "slow" : "");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.title = p.pattern;
    if (p.slow) summary.append(element("span", "tag", `slow ×${count(p.slow)}`), " ");
    summary.append(element("code", "", p.pattern));
    details.append(summary, element("pre", "", p.pattern));
    details.open = open.has(p.pattern);
    const statement = cell("", "sql");
    statement.append(details);
    row.append(statement, cell(count(p.calls), "num"), cell(millis(p.p95_ms), "num"), cell(millis(p.max_ms), "num"));
    return row;
  });
  body.replaceChildren(...(rows.length ? rows : [emptyRow("No statements timed yet.", 4)]));
}

function showAdvice(queries) {
  const items = queries.suggestions.map((s) => {
    const item = document.createElement("li");
    const pattern = element("code", "", s.pattern);
    pattern.title = s.pattern;
    item.append(element("span", "advice-what", s.advice), pattern);
    return item;
  });
  if (!items.length) items.push(element("li", "muted", "No sequential scans of large tables in the slow statements' plans."));
  items.push(...queries.notes.map((note) => element("li", "muted note", note)));
  document.getElementById("sql-advice").replaceChildren(...items);
}

// Trend lines: one sample per answer, the last 60 kept; a failed poll leaves a gap.
const SPARK = { width: 300, height: 56, pad: 5, samples: 60 };  // as in templates/ops.html
const TRENDS = {
  p95: { label: "Request p95, last minute", format: FORMATS.ms, least: 1 },
  eps: { label: "Events/s, this restaurant", format: (n) => (n >= 10 ? n.toFixed(0) : n.toFixed(1)), least: 1 },
  cpu: { label: "Server CPU", format: FORMATS.percent, least: 5 },
};
const samples = [];
let previous = { seq: Number(screen.dataset.seq), at: Date.parse(screen.dataset.at) };

function remember(ops) {
  const at = Date.parse(ops.at);
  const seconds = (at - previous.at) / 1000;
  const eps = seconds > 0 ? Math.max(0, ops.delivery.seq - previous.seq) / seconds : null;
  previous = { seq: ops.delivery.seq, at };
  keep({ p95: ops.requests.p95_ms, eps, cpu: ops.process.cpu_percent });
}

function keep(sample) {
  samples.push(sample);
  samples.splice(0, samples.length - SPARK.samples);
}

function drawTrend(row) {
  const { label, format, least } = TRENDS[row.dataset.series];
  const values = samples.map((sample) => sample[row.dataset.series]);
  const known = values.filter((v) => v != null);
  const top = Math.max(least, ...known) * 1.15;
  const { width, height, pad } = SPARK;
  const x = (i) => width - pad - ((values.length - 1 - i) * (width - 2 * pad)) / (SPARK.samples - 1);
  const y = (v) => height - pad - ((height - 2 * pad) * v) / top;
  const runs = [[]];
  values.forEach((v, i) => {
    if (v == null) runs.push([]);
    else runs.at(-1).push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  });
  const lines = runs.filter((run) => run.length).map((run) => {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", (run.length === 1 ? [run[0], run[0]] : run).join(" "));
    return line;
  });
  const svg = row.querySelector("svg");
  svg.querySelector(".spark-line").replaceChildren(...lines);
  const last = values.at(-1);
  const dot = svg.querySelector(".spark-dot");
  dot.setAttribute("visibility", last == null ? "hidden" : "visible");
  for (const end of ["1", "2"]) {
    dot.setAttribute(`x${end}`, x(values.length - 1).toFixed(1));
    dot.setAttribute(`y${end}`, y(last ?? 0).toFixed(1));
  }
  svg.dataset.samples = String(known.length);
  const now = last == null ? "—" : format(last);
  const range = known.length ? `peak ${format(Math.max(...known))} · low ${format(Math.min(...known))}`
    : "no samples yet";
  row.querySelector("[data-now]").textContent = now;
  row.querySelector("[data-peak]").textContent = range;
  svg.setAttribute("aria-label", `${label}: now ${now}; ${range} over the last ${values.length} readings`);
}

function drawTrends() {
  for (const row of screen.querySelectorAll(".spark-row")) drawTrend(row);
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
  if (!rows.length) rows.push(emptyRow("Every device is caught up.", 4));
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
  showRoutes(ops.requests.routes);
  showPatterns(ops.queries.patterns);
  showAdvice(ops.queries);
  remember(ops);
  drawTrends();
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
    const response = await fetch(source, { credentials: "same-origin", signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (response.status === 401) {  // the session ended: sign in again, then come back here
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (!response.ok) throw new Error(`ops answered ${response.status}`);
    render(await response.json());
    setOnline(true);
  } catch {
    setOnline(false);
    keep({ p95: null, eps: null, cpu: null });  // a gap in the lines while the server was out of reach
    drawTrends();
  }
  setTimeout(poll, pollMs());
}

// The page was rendered with the first answer: it is the trend lines' first sample.
const first = {};
for (const row of screen.querySelectorAll(".spark-row")) {
  first[row.dataset.series] = row.dataset.value === "" ? null : Number(row.dataset.value);
}
keep(first);
drawTrends();
setTimeout(poll, pollMs());

// The host stand: a live floor map, the waitlist, and today's reservations on a timeline per
// table. Seat a party or a booking by tapping it, then (when it needs one) a table.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const rid = screen.dataset.rid;
const svg = document.getElementById("floor");
const list = document.getElementById("parties");
const timeline = document.getElementById("timeline");
const lanes = document.getElementById("lanes");
const card = document.getElementById("booking");
let seating = null;  // { node, name, path, apply } of what is being seated, while the host picks a table

const STATES = { booked: "○ booked", confirmed: "✓ confirmed", seated: "● seated", completed: "✔ done" };
const WAITING = new Set(["booked", "confirmed"]);  // bookings that can still be seated
const DAY = Date.parse(`${timeline.dataset.day}T00:00:00Z`);  // the restaurant's local day, as a UTC date
const wallClock = new Intl.DateTimeFormat("en-GB", {
  timeZone: timeline.dataset.zone, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});

const minutesSince = (iso) => Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
const twoDigits = (n) => String(n).padStart(2, "0");
const hhmm = (minute) => `${twoDigits(Math.floor(minute / 60) % 24)}:${twoDigits(minute % 60)}`;

// Wall-clock minutes after the restaurant's local midnight of today (past 1440 after midnight),
// the scale the server renders the timeline on.
function minuteOf(instant) {
  const parts = Object.fromEntries(wallClock.formatToParts(instant).map((p) => [p.type, p.value]));
  const date = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day));
  return ((date - DAY) / 86400000) * 1440 + Number(parts.hour) * 60 + Number(parts.minute);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never markup
  return node;
}

// POST to the API; answers [body, null] or [null, the server's reason].
async function post(path, body) {
  const response = await fetch(`/api/v1/restaurants/${rid}${path}`, {
    method: "POST", credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => null);
  if (response.ok) return [answer, null];
  return [null, answer?.error?.message ?? `the server answered ${response.status}`];
}

function flash(message) {
  const problem = document.getElementById("problem");
  problem.textContent = message;
  problem.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { problem.hidden = true; }, 8000);
}

function applyTable(table) {
  const node = svg.querySelector(`.table[data-id="${table.id}"]`);
  if (!node) return;
  node.setAttribute("class", `table ${table.status}`);
  node.dataset.status = table.status;
  node.dataset.seated = table.seated_at || "";
  node.dataset.label = table.label;
  node.dataset.seats = table.seats;
  node.dataset.mergedInto = table.merged_into ?? "";
  node.dataset.mergedTables = (table.merged_tables ?? []).join(" ");
  node.querySelector(".label").textContent = table.label;  // a renamed table, live
  node.querySelector(".state").textContent = table.status.replace("_", " ");
  drawMerges();
  refresh();
}

// Tables joined to a party, in the merge's colour: the main table's outline, a tag "+ D2, D3" on
// it and "with D1" on each joined table, and a line from it to each. Drawn from every table's
// merged_into and merged_tables together, so the events of one step can arrive in any order.
const MERGE_COLOURS = ["#00838f", "#c2185b", "#7b1fa2", "#1565c0", "#ef6c00", "#37474f"];

function drawMerges() {
  const tables = [...svg.querySelectorAll(".table")];
  const byId = new Map(tables.map((t) => [t.dataset.id, t]));
  const joinedTo = new Map();  // main table → the tables joined to it, in map order
  for (const node of tables) {
    const ids = [...node.dataset.mergedTables.split(" ").filter(Boolean),
                 ...tables.filter((t) => t.dataset.mergedInto === node.dataset.id).map((t) => t.dataset.id)];
    const joined = tables.filter((t) => t !== node && ids.includes(t.dataset.id));
    if (joined.length) joinedTo.set(node, joined);
  }
  const links = document.getElementById("links");
  links.replaceChildren();
  const merged = new Map();  // table → [role, colour, tag, words]
  [...joinedTo].forEach(([main, joined], n) => {
    const colour = MERGE_COLOURS[n % MERGE_COLOURS.length];
    const labels = joined.map((t) => t.dataset.label);
    merged.set(main, ["lead", colour, labels.length > 2 ? `+${labels.length} tables` : `+ ${labels.join(", ")}`,
                      `joined with ${labels.join(", ")}`]);
    for (const node of joined) {
      merged.set(node, ["joined", colour, `with ${main.dataset.label}`, `joined to ${main.dataset.label}'s party`]);
      const link = document.createElementNS(svg.namespaceURI, "line");
      for (const [end, at] of [["1", main], ["2", node]]) {
        link.setAttribute(`x${end}`, at.dataset.x);
        link.setAttribute(`y${end}`, at.dataset.y);
      }
      link.style.setProperty("--merge", colour);
      links.append(link);
    }
  });
  for (const node of tables) {
    const [role, colour, tag, words] = merged.get(node) ?? [];
    const { label, seats, status } = node.dataset;
    node.classList.toggle("lead", role === "lead");
    node.classList.toggle("joined", role === "joined");
    node.setAttribute("aria-label", `Table ${label}, ${seats} seats, ${status.replace("_", " ")}` +
                                    (words ? `, ${words}` : ""));
    if (!role) {
      node.style.removeProperty("--merge");
      continue;
    }
    node.style.setProperty("--merge", colour);
    const text = node.querySelector(".merge-tag text");
    text.textContent = tag;
    const width = Math.max(44, Math.ceil(text.getComputedTextLength()) + 20);  // the pill fits its words
    const pill = node.querySelector(".merge-tag rect");
    pill.setAttribute("x", -width / 2);
    pill.setAttribute("width", width);
  }
}

// How the last "your table is ready" message went (templates/floor.html says the same).
const NOTIFIED = {
  queued: "✉ Table-ready message queued", retrying: "⟳ Table-ready message retrying",
  delivered: "✔ Told: table ready", failed: "✖ Table-ready message failed",
};

function toldLine(told) {
  const line = element("p", `told ${told.status}`,
                       `${NOTIFIED[told.status]} by ${told.via}` +
                       (told.count > 1 ? ` · ${told.count}× sent` : "") +
                       (told.attempts > 1 ? ` · ${told.attempts} tries` : ""));
  line.title = told.message;
  if (told.error) line.append(element("span", "why", told.error));
  return line;
}

function partyItem(party) {
  const item = element("li", `party ${party.status}`);
  Object.assign(item.dataset, { id: party.id, size: party.size, joined: party.joined_at,
                                quoted: party.quoted_minutes ?? "", due: party.quote_due_at ?? "" });
  const line = element("div");
  const countdown = element("span", "countdown");
  countdown.setAttribute("role", "timer");
  line.append(element("strong", "name", party.name), " · ", element("span", "size", party.size), " guests",
              countdown, element("span", "wait"));
  if (party.note) line.append(element("span", "note", party.note));
  const actions = element("div", "actions");
  const notify = element("button", "notify", party.notification ? "Notify again" : "Notify");
  actions.append(notify, element("button", "seat", "Seat"));
  item.append(line);
  if (party.notification) item.append(toldLine(party.notification));
  item.append(actions);
  tickQuote(item);
  return item;
}

// The quote counting down: mm:ss left until joined_at + quoted_minutes, then red, counting up.
function tickQuote(party) {
  const countdown = party.querySelector(".countdown");
  const due = Date.parse(party.dataset.due);
  if (Number.isNaN(due)) {
    countdown.textContent = "";
    party.classList.remove("missed");
    return;
  }
  const seconds = Math.round((due - Date.now()) / 1000);
  const clock = `${Math.floor(Math.abs(seconds) / 60)}:${twoDigits(Math.abs(seconds) % 60)}`;
  countdown.textContent = seconds >= 0 ? `${clock} left` : `${clock} over quote`;
  party.classList.toggle("missed", seconds < 0);
}

// What a new party of each size would be quoted now; asked again (at most every 2 s) when the
// floor or the waitlist changes, and every minute.
async function refreshQuotes() {
  for (const quote of document.querySelectorAll("#quotes .quote")) {
    const response = await fetch(`/api/v1/restaurants/${rid}/waitlist/estimate?size=${quote.dataset.size}`,
                                 { credentials: "same-origin" }).catch(() => null);
    const estimate = response?.ok ? await response.json() : null;
    quote.querySelector("b").textContent = estimate ? `${estimate.minutes} min` : "–";
    quote.title = estimate ? estimate.tables.slice(0, 3)
      .map((t) => `${t.label}: ${t.frees_in} min (${t.reason})`).join("\n") : "";
  }
}

function quotesSoon() {
  if (quotesSoon.timer) return;
  quotesSoon.timer = setTimeout(() => { quotesSoon.timer = null; refreshQuotes(); }, 2000);
}

function applyParty(party) {
  const existing = list.querySelector(`.party[data-id="${party.id}"]`);
  const open = party.status === "waiting" || party.status === "notified";
  if (!open) existing?.remove();
  else if (existing) existing.replaceWith(partyItem(party));
  else list.append(partyItem(party));
  refresh();
}

// --- Today's reservations -------------------------------------------------------------------

function bookingBlock(booking) {
  const block = element("button", `booking ${booking.status}`);
  block.type = "button";
  Object.assign(block.dataset, {
    id: booking.id, version: booking.version, status: booking.status, table: booking.table_id ?? "",
    size: booking.size, start: booking.starts_at, end: booking.ends_at, phone: booking.phone ?? "",
    note: booking.note,
  });
  const size = element("span", "size", booking.size);
  size.title = `${booking.size} guests`;
  const line = element("span", "line");
  line.append(element("b", "name", booking.name), size);
  if (booking.pacing_override) line.append(paceMark(booking.pacing_override));
  const facts = element("span", "facts");
  facts.append(element("span", "when", hhmm(minuteOf(Date.parse(booking.starts_at)))), " · ",
               element("span", "state", STATES[booking.status]));
  block.append(line, facts);
  return block;
}

// Booked past a pacing limit by a host: why, and who (templates/floor.html says the same).
function paceMark(override) {
  const mark = element("span", "pace", "over pace");
  const why = `Over pace: ${override.reason} (booked by ${override.by})`;
  mark.setAttribute("role", "img");
  mark.title = why;
  mark.setAttribute("aria-label", why);
  return mark;
}

// The timeline's row of a table (or of bookings without one), made in the map's table order.
function rowOf(tableId) {
  const key = String(tableId ?? "");
  const existing = lanes.querySelector(`.row[data-table="${key}"]`);
  if (existing) return existing;
  const tables = [...svg.querySelectorAll(".table")];
  const table = tables.find((t) => t.dataset.id === key);
  const rank = (k) => {  // bookings without a table first, then the map's order, unknown tables last
    const at = tables.findIndex((t) => t.dataset.id === k);
    return k === "" ? -1 : at < 0 ? tables.length : at;
  };
  const row = element("div", "row");
  row.dataset.table = key;
  const who = element("div", "who");
  who.append(element("b", "", table ? table.dataset.label : key ? `#${key}` : "No table"),
             element("small", "", table ? `${table.dataset.seats} seats` : "to assign"));
  row.append(who, element("div", "track"));
  const after = [...lanes.querySelectorAll(".row")].find((r) => rank(r.dataset.table) > rank(key));
  lanes.insertBefore(row, after ?? document.getElementById("now"));
  return row;
}

// Put one booking where it belongs now: its table's row in start order, or off the timeline.
function placeBooking(booking) {
  const existing = lanes.querySelector(`.booking[data-id="${booking.id}"]`);
  if (existing && Number(existing.dataset.version) > booking.version) return;  // an older step, replayed
  const before = existing?.closest(".row");
  existing?.remove();
  const start = minuteOf(Date.parse(booking.starts_at));
  if (STATES[booking.status] && start >= 0 && start < 1440) {
    const track = rowOf(booking.table_id).querySelector(".track");
    const later = [...track.children].find((b) => Date.parse(b.dataset.start) > Date.parse(booking.starts_at));
    track.insertBefore(bookingBlock(booking), later ?? null);  // start order packs overlaps into lanes
  }
  if (before && !before.querySelector(".booking")) before.remove();
}

function applyBooking(booking) {
  placeBooking(booking);
  layout();
  if (card.open && card.dataset.id === String(booking.id)) {
    const block = lanes.querySelector(`.booking[data-id="${booking.id}"]`);
    if (block) showCard(block);
    else card.close();
  }
}

// Span the service hours and every booking in whole hours; place blocks on 5-minute columns.
function layout() {
  const blocks = [...lanes.querySelectorAll(".booking")];
  const spans = blocks.map((b) => [minuteOf(Date.parse(b.dataset.start)), minuteOf(Date.parse(b.dataset.end))]);
  const first = Math.floor(Math.min(Number(timeline.dataset.opens), ...spans.map((s) => s[0])) / 60) * 60;
  const last = Math.ceil(Math.max(Number(timeline.dataset.closes), ...spans.map((s) => s[1])) / 60) * 60;
  Object.assign(lanes.dataset, { first, last });
  lanes.style.setProperty("--span", last - first);
  lanes.style.setProperty("--slots", (last - first) / 5);
  blocks.forEach((block, n) => {
    const from = Math.floor((spans[n][0] - first) / 5) + 1;
    block.style.gridColumn = `${from} / ${Math.max(from + 1, Math.floor((spans[n][1] - first + 4) / 5) + 1)}`;
  });
  const hours = document.getElementById("hours");
  hours.replaceChildren();
  for (let hour = first; hour < last; hour += 60) {
    const tick = element("span", "", hhmm(hour));
    tick.style.setProperty("--at", hour - first);
    hours.append(tick);
  }
  const guests = blocks.reduce((sum, b) => sum + Number(b.dataset.size), 0);
  const count = (states) => blocks.filter((b) => states.includes(b.dataset.status)).length;
  document.getElementById("tally").textContent =
    `${blocks.length} booking${blocks.length === 1 ? "" : "s"} · ${guests} guest${guests === 1 ? "" : "s"}` +
    ` · ${count(["seated"])} seated · ${count(["booked", "confirmed"])} to come`;
  document.getElementById("no-bookings").hidden = blocks.length > 0;
  refreshTimeline();
}

// The "now" line, and bookings not seated by their time marked late (in words, not only colour).
function refreshTimeline() {
  const now = minuteOf(Date.now());
  const first = Number(lanes.dataset.first);
  const line = document.getElementById("now");
  line.hidden = now < first || now > Number(lanes.dataset.last);
  line.style.setProperty("--at", now - first);
  const tag = line.querySelector(".now-tag");
  tag.textContent = hhmm(now);
  const covered = line.hidden ? null : tag.getBoundingClientRect();
  for (const hour of document.getElementById("hours").children) {  // the tag hides the hour under it
    const box = hour.getBoundingClientRect();
    hour.style.visibility = covered && box.left < covered.right + 4 && box.left + hour.scrollWidth > covered.left - 4
      ? "hidden" : "";
  }
  for (const block of lanes.querySelectorAll(".booking")) {
    const late = WAITING.has(block.dataset.status) ? now - minuteOf(Date.parse(block.dataset.start)) : 0;
    block.classList.toggle("late", late > 0);
    block.querySelector(".state").textContent = late > 0 ? `⚠ ${late} min late` : STATES[block.dataset.status];
  }
}

function refresh() {
  for (const node of svg.querySelectorAll(".table")) {
    node.querySelector(".since").textContent = node.dataset.seated ? `${minutesSince(node.dataset.seated)} min` : "";
  }
  const parties = list.querySelectorAll(".party");
  for (const party of parties) {
    const waited = minutesSince(party.dataset.joined);
    const quoted = party.dataset.quoted;
    const wait = party.querySelector(".wait");
    wait.textContent = quoted ? `waited ${waited} of ${quoted} min quoted` : `waited ${waited} min`;
    wait.classList.toggle("late", quoted !== "" && waited > Number(quoted));
  }
  document.getElementById("waiting").textContent = parties.length;
  document.getElementById("nobody").hidden = parties.length > 0;
  refreshTimeline();
}

// --- Seating --------------------------------------------------------------------------------

function pick(target) {
  seating?.node.classList.remove("picked");
  target?.node.classList.add("picked");
  seating = target;
  screen.classList.toggle("picking", Boolean(target));
  document.getElementById("hint").hidden = !target;
  if (target) document.getElementById("hint-name").textContent = target.name;
}

const tableLabel = (id) => svg.querySelector(`.table[data-id="${id}"]`)?.dataset.label ?? `#${id}`;

function showCard(block) {
  const { id, table, size, note, phone, status } = block.dataset;
  const name = block.querySelector(".name").textContent;
  const [start, end] = [minuteOf(Date.parse(block.dataset.start)), minuteOf(Date.parse(block.dataset.end))];
  card.dataset.id = id;
  document.getElementById("booking-name").textContent = name;
  document.getElementById("booking-facts").textContent =
    `${hhmm(start)}–${hhmm(end)} · ${size} guests · ${table ? `table ${tableLabel(table)}` : "no table yet"}`;
  document.getElementById("booking-state").textContent = block.querySelector(".state").textContent;
  const pace = block.querySelector(".pace")?.title ?? "";
  for (const [field, text] of [["pace", pace], ["note", note], ["phone", phone]]) {
    const node = document.getElementById(`booking-${field}`);
    node.textContent = text;
    node.hidden = !text;
  }
  document.getElementById("booking-error").hidden = true;
  const seat = document.getElementById("seat-booked");
  seat.hidden = !WAITING.has(status);
  seat.textContent = table ? `Seat at ${tableLabel(table)}` : "Seat · pick a table";
  document.getElementById("seat-elsewhere").hidden = !WAITING.has(status) || !table;
  if (!card.open) card.showModal();
}

function pickForBooking() {
  const block = lanes.querySelector(`.booking[data-id="${card.dataset.id}"]`);
  card.close();
  if (block) pick({ node: block, name: block.querySelector(".name").textContent, apply: applyBooking,
                    path: `/reservations/${block.dataset.id}/seat` });
}

list.addEventListener("click", async (click) => {
  const party = click.target.closest(".party");
  if (!party) return;
  if (click.target.classList.contains("notify")) {
    const [updated, problem] = await post(`/waitlist/${party.dataset.id}/notify`);
    if (updated) applyParty(updated);
    else flash(`Could not notify: ${problem}`);
  } else if (click.target.classList.contains("seat")) {
    pick({ node: party, name: party.querySelector(".name").textContent, apply: applyParty,
           path: `/waitlist/${party.dataset.id}/seat` });
  }
});

svg.addEventListener("click", async (click) => {
  const table = click.target.closest(".table");
  if (!table || !seating) return;
  const target = seating;
  pick(null);
  const [updated, problem] = await post(target.path, { table_id: Number(table.dataset.id) });
  if (updated) target.apply(updated);
  else flash(`Could not seat ${target.name} at ${table.dataset.label}: ${problem}`);
});

svg.addEventListener("keydown", (key) => {
  if (key.key === "Enter" || key.key === " ") key.target.closest(".table")?.dispatchEvent(new MouseEvent("click", { bubbles: true }));
});

lanes.addEventListener("click", (click) => {
  const block = click.target.closest(".booking");
  if (block) showCard(block);
});

document.getElementById("seat-booked").addEventListener("click", async () => {
  const block = lanes.querySelector(`.booking[data-id="${card.dataset.id}"]`);
  if (!block) return card.close();
  if (!block.dataset.table) return pickForBooking();
  const [updated, problem] = await post(`/reservations/${block.dataset.id}/seat`);
  if (updated) {
    card.close();
    applyBooking(updated);
  } else {
    const error = document.getElementById("booking-error");
    error.textContent = `Could not seat: ${problem}.`;
    error.hidden = false;
  }
});
document.getElementById("seat-elsewhere").addEventListener("click", pickForBooking);
document.getElementById("booking-close").addEventListener("click", () => card.close());
card.addEventListener("click", (click) => { if (click.target === card) card.close(); });  // the backdrop
document.getElementById("problem").addEventListener("click", (click) => { click.currentTarget.hidden = true; });
document.getElementById("cancel-pick").addEventListener("click", () => pick(null));
document.addEventListener("keydown", (key) => { if (key.key === "Escape") pick(null); });

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch, channels: ["floor"],
  onEvent: (event) => {
    if (event.data.table) applyTable(event.data.table);
    event.data.tables?.forEach(applyTable);  // a merge's joined (or left) tables
    if (event.data.party) applyParty(event.data.party);
    if (event.data.reservation) applyBooking(event.data.reservation);
    if (event.data.table || event.data.party || event.data.reservation) quotesSoon();
  },
  onReset: (snapshot) => {
    snapshot.tables.forEach(applyTable);
    list.replaceChildren(...snapshot.waitlist.map(partyItem));
    lanes.querySelectorAll(".row").forEach((row) => row.remove());
    snapshot.reservations.forEach(placeBooking);
    layout();
    refresh();
  },
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
drawMerges();
layout();
refresh();
list.querySelectorAll(".party").forEach(tickQuote);
refreshQuotes();
setInterval(() => list.querySelectorAll(".party").forEach(tickQuote), 1000);
setInterval(refreshQuotes, 60000);
setInterval(() => {
  const newDay = minuteOf(Date.now()) >= 1440;  // past local midnight: load the new day's bookings
  if (newDay && !seating && !card.open) location.reload();
  else refresh();
}, 30000);

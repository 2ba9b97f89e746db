// The kitchen display: tickets in fire order, timers coloured by the station's thresholds,
// bump bar keys, live updates; tickets changed after they were sent flash and say what
// changed; held lines count down to their fire time; the recently bumped can be recalled.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const list = document.getElementById("tickets");
const rid = screen.dataset.rid;
const station = screen.dataset.station;
const amber = Number(screen.dataset.amber);
const red = Number(screen.dataset.red);
const canBump = screen.dataset.canBump === "yes";
const recallMs = Number(screen.dataset.recallMinutes) * 60000;
const thresholds = new Map(screen.dataset.thresholds.trim().split(/\s+/).filter(Boolean).map((entry) => {
  const [name, stationAmber, stationRed] = entry.split(":");
  return [name, { amber: Number(stationAmber), red: Number(stationRed) }];
}));
let selected = 0;
const recallButton = document.getElementById("recall");
const recentToggle = document.getElementById("recent-toggle");
const recentPanel = document.getElementById("recent");
const recent = new Map();  // bumped within the recall window: id → ticket
const chimeButton = document.getElementById("chime");
let audio = null;  // created on the tap that turns the chime on (browsers allow sound after a gesture)
const FRESH_MS = 6000;  // how long a new ticket stands out
const FLASH_MS = 10000;  // how long a changed ticket flashes; then it keeps a steady mark
const drawnChange = new Map();  // ticket id → the changed_at this screen last drew
const flashingSince = new Map();  // ticket id → when its flash began

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never markup
  return node;
}

const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;

function card(ticket) {
  const article = element("article", "ticket");
  article.dataset.id = ticket.id;
  article.dataset.fired = ticket.fired_at;
  article.dataset.status = ticket.status;
  article.dataset.station = ticket.station;
  article.dataset.changed = ticket.changed_at || "";
  article.tabIndex = 0;
  const header = element("header");
  header.append(element("span", "key"), element("strong", "where", ticket.table_label || `Order ${ticket.order_id}`),
                element("span", "timer", "0:00"));
  const meta = [ticket.server_name || "", ticket.guests ? `${ticket.guests} guests` : "", `course ${ticket.course}`,
                ticket.status === "started" ? "cooking" : ""].filter(Boolean).join(" · ");
  article.append(header, element("p", "meta", meta));
  if (ticket.order_note) article.append(element("p", "note", ticket.order_note));
  if (ticket.changes?.length) {
    article.classList.add("changed");
    const changes = element("ul", "changes");
    changes.setAttribute("aria-label", "Changed after it was sent");
    for (const change of ticket.changes.slice(-6)) changes.append(element("li", `change ${change.kind}`, change.text));
    article.append(changes);
  }
  const items = element("ul", "items");
  for (const item of ticket.items) {
    const line = element("li", `item ${item.status}`);
    Object.assign(line.dataset, { item: item.id, name: item.name, qty: item.qty, status: item.status,
                                  fireAt: item.fire_at || "" });
    line.append(element("b", "", `${item.qty}×`), document.createTextNode(` ${item.name}`));
    if (item.seat) line.append(element("span", "seat", `seat ${item.seat}`));
    for (const modifier of item.modifiers) line.append(element("span", "mod", modifier.name));
    if (item.note) line.append(element("span", "note", item.note));
    if (item.status === "held") line.append(element("span", "hold", "hold"));
    items.append(line);
  }
  article.append(items);
  if (canBump) {
    const actions = element("div", "actions");
    const start = element("button", "start", "Start");
    start.hidden = ticket.status === "started";
    actions.append(start, element("button", "bump", "Bump"));
    article.append(actions);
  }
  return article;
}

const cards = () => [...list.querySelectorAll(".ticket")];

function allDay() {
  // How many of each item are still to cook across the open tickets.
  const counts = new Map();
  for (const line of list.querySelectorAll("li.item:not(.ready):not(.void)")) {
    counts.set(line.dataset.name, (counts.get(line.dataset.name) || 0) + Number(line.dataset.qty));
  }
  const strip = document.getElementById("all-day");
  strip.replaceChildren(...[...counts].sort((a, b) => b[1] - a[1]).map(([name, qty]) => {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = `${qty} ${name}`;
    return chip;
  }));
  strip.hidden = counts.size === 0;
}

function renumber() {
  cards().forEach((node, n) => { node.querySelector(".key").textContent = n + 1; });
  document.getElementById("count").textContent = `${cards().length} open`;
  document.getElementById("empty").hidden = cards().length > 0;
  select(Math.min(selected, cards().length - 1));
  allDay();
}

function select(n) {
  selected = Math.max(0, n);
  cards().forEach((node, i) => node.classList.toggle("selected", i === selected));
}

function noteChange(id, changedAt, drawnBefore) {
  // A change this screen has not drawn yet flashes (on first sight only if it is a fresh one).
  const before = drawnChange.get(id);
  drawnChange.set(id, changedAt);
  if (!changedAt || changedAt === before) return;
  if (drawnBefore || Date.now() - Date.parse(changedAt) < FLASH_MS) flashingSince.set(id, Date.now());
}

function flash(node) {
  // Redrawn mid-flash, the animation carries on where it was.
  const since = flashingSince.get(node.dataset.id);
  if (since === undefined) return;
  const elapsed = Date.now() - since;
  if (elapsed >= FLASH_MS) { flashingSince.delete(node.dataset.id); return; }
  node.classList.add("flash");
  node.style.animationDelay = `-${elapsed}ms`;
  setTimeout(() => node.classList.remove("flash"), FLASH_MS - elapsed);
}

function upsert(ticket, isNew = false) {
  const existing = list.querySelector(`.ticket[data-id="${ticket.id}"]`);
  remember(ticket);
  if (ticket.status === "bumped") { existing?.remove(); renumber(); drawRecent(); return; }
  noteChange(String(ticket.id), ticket.changed_at, Boolean(existing));
  const fresh = card(ticket);
  flash(fresh);
  if (existing) existing.replaceWith(fresh);
  else {
    const later = cards().find((node) => Number(node.dataset.id) > ticket.id);  // fire order
    list.insertBefore(fresh, later || null);
  }
  if (isNew) announce(fresh);
  renumber();
  tick();
}

function announce(node) {
  // A new ticket stands out for a few seconds, and chimes if the cook asked for it.
  node.classList.add("fresh");
  setTimeout(() => node.classList.remove("fresh"), FRESH_MS);
  if (!audio) return;
  const tone = audio.createOscillator();
  const volume = audio.createGain();
  tone.frequency.value = 880;
  volume.gain.setValueAtTime(0.0001, audio.currentTime);
  volume.gain.exponentialRampToValueAtTime(0.4, audio.currentTime + 0.02);
  volume.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.6);
  tone.connect(volume).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.6);
  screen.dataset.chimes = String(Number(screen.dataset.chimes) + 1);
}

function resumeChime(event) {
  if (event.target !== chimeButton) setChime(true);
}

function setChime(on) {
  document.removeEventListener("pointerdown", resumeChime);
  document.removeEventListener("keydown", resumeChime);
  const Context = window.AudioContext || window.webkitAudioContext;
  if (on && !audio && Context) audio = new Context();
  if (!on && audio) { audio.close(); audio = null; }
  chimeButton.setAttribute("aria-pressed", String(Boolean(audio)));
  chimeButton.textContent = audio ? "Chime on" : "Chime off";
  localStorage.setItem("serveline.chime", audio ? "on" : "off");
}

function ours(channel) {
  return !station || channel === `kitchen:${station}`;
}

function onEvent(event) {
  if (!ours(event.channel)) return;
  if (event.data.ticket) upsert(event.data.ticket, event.name === "ticket.fired");
}

function onReset(snapshot) {
  list.replaceChildren(...(Array.isArray(snapshot.tickets) ? snapshot.tickets
    : Object.values(snapshot.tickets).flat()).map(card));
  renumber();
  tick();
  loadRecent();
}

function tick() {
  const now = Date.now();
  for (const node of cards()) {
    const seconds = Math.max(0, Math.floor((now - Date.parse(node.dataset.fired)) / 1000));
    const minutes = seconds / 60;
    const limits = thresholds.get(node.dataset.station) || { amber, red };
    node.querySelector(".timer").textContent = clock(seconds);
    node.classList.toggle("amber", minutes >= limits.amber && minutes < limits.red);
    node.classList.toggle("red", minutes >= limits.red);
  }
  for (const line of list.querySelectorAll("li.item.held")) {
    // The server fires the line at fire_at; its redraw comes with that event.
    const left = Math.ceil((Date.parse(line.dataset.fireAt) - now) / 1000);
    const hold = line.querySelector(".hold");
    hold.textContent = !line.dataset.fireAt ? "held" : left > 0 ? `hold ${clock(left)}` : "FIRE";
    hold.classList.toggle("due", Boolean(line.dataset.fireAt) && left <= 0);
  }
  drawRecent(now);
}

function remember(ticket) {
  // The recently bumped list follows the tickets as they are bumped and recalled.
  if (!ours(`kitchen:${ticket.station}`)) return;
  if (ticket.status === "bumped" && ticket.bumped_at && ticket.items.some((item) => item.status !== "void")) {
    recent.set(String(ticket.id), ticket);
  } else recent.delete(String(ticket.id));
}

function newestFirst() {
  return [...recent.values()].sort((a, b) => Date.parse(b.bumped_at) - Date.parse(a.bumped_at) || b.id - a.id);
}

function drawRecent(now = Date.now()) {
  for (const [id, ticket] of recent) if (now - Date.parse(ticket.bumped_at) >= recallMs) recent.delete(id);
  const tickets = newestFirst();
  document.getElementById("recent-count").textContent = tickets.length;
  if (recallButton) recallButton.disabled = tickets.length === 0;
  document.getElementById("recent-empty").hidden = tickets.length > 0;
  if (recentPanel.hidden) return;
  const rows = tickets.map((ticket) => {
    const row = element("li", "recent-ticket");
    row.dataset.id = ticket.id;
    const ago = Math.max(0, Math.floor((now - Date.parse(ticket.bumped_at)) / 1000));
    const head = element("p", "recent-head");
    head.append(element("strong", "where", ticket.table_label || `Order ${ticket.order_id}`),
                element("span", "muted", ` ${ticket.station} · bumped ${clock(ago)} ago`));
    const what = ticket.items.filter((item) => item.status !== "void").map((item) => `${item.qty}× ${item.name}`);
    row.append(head, element("p", "recent-items", what.join(", ")));
    if (canBump) row.append(element("button", "recall", "Recall"));
    return row;
  });
  document.getElementById("recent-list").replaceChildren(...rows);
}

async function loadRecent() {
  const query = station ? `?station=${station}&limit=100` : "?limit=100";
  const response = await fetch(`/api/v1/restaurants/${rid}/kitchen/tickets/recent${query}`,
                               { credentials: "same-origin" });
  if (!response.ok) return;
  recent.clear();
  for (const ticket of (await response.json()).items) remember(ticket);
  drawRecent();
}

async function act(ticketId, action) {
  const response = await fetch(`/api/v1/restaurants/${rid}/kitchen/tickets/${ticketId}/${action}`,
                               { method: "POST", credentials: "same-origin" });
  if (response.ok) upsert(await response.json());
  return response;
}

let bumping = Promise.resolve();  // the last bump in flight: a recall waits for it

async function bump(node) {
  if (!node) return;
  bumping = act(node.dataset.id, "bump");
  await bumping;
  drawRecent();
}

async function recall(ticketId) {
  // Any ticket of the recent list, or (R, the Recall button) the last one bumped.
  await bumping;
  const id = ticketId ?? newestFirst()[0]?.id;
  if (id === undefined) return;
  const response = await act(id, "recall");
  const problem = document.getElementById("recent-error");
  problem.hidden = response.ok;
  if (!response.ok) {
    problem.textContent = (await response.json()).error?.message || "Could not recall this ticket";
    if (response.status === 409) recent.delete(String(id));  // past the window, or no longer bumped
  }
  drawRecent();
}

function toggleRecent(open = recentPanel.hidden) {
  recentPanel.hidden = !open;
  recentToggle.setAttribute("aria-expanded", String(open));
  if (open) loadRecent();
  drawRecent();
}

if (canBump) {
  document.addEventListener("keydown", async (key) => {
    if (key.target.closest?.("button")) return;  // a focused button answers its own Enter/Space
    if (key.key >= "1" && key.key <= "9") select(Number(key.key) - 1);
    else if (key.key === "Enter" || key.key === " ") {
      key.preventDefault();
      await bump(cards()[selected]);
    } else if (key.key === "r" || key.key === "R") await recall();
    else if (key.key === "Escape") toggleRecent(false);
  });
  recallButton.addEventListener("click", () => recall());
}
recentToggle.addEventListener("click", () => toggleRecent());
document.getElementById("recent-close").addEventListener("click", () => toggleRecent(false));
recentPanel.addEventListener("click", async (click) => {
  const row = click.target.closest("button.recall") && click.target.closest(".recent-ticket");
  if (row) await recall(row.dataset.id);
});

list.addEventListener("click", async (click) => {
  const node = click.target.closest(".ticket");
  if (!node) return;
  select(cards().indexOf(node));
  if (!canBump) return;
  const line = click.target.closest("li.item");
  if (click.target.closest("button.bump")) await bump(node);
  else if (click.target.closest("button.start")) await act(node.dataset.id, "start");
  else if (line && ["fired", "cooking"].includes(line.dataset.status)) {
    const response = await fetch(
      `/api/v1/restaurants/${rid}/kitchen/tickets/${node.dataset.id}/items/${line.dataset.item}/ready`,
      { method: "POST", credentials: "same-origin" });
    if (response.ok) upsert(await response.json());
  }
});
chimeButton.addEventListener("click", () => setChime(!audio));
if (localStorage.getItem("serveline.chime") === "on") {
  // Sound needs a gesture after a reload: the first tap or key anywhere turns it back on.
  chimeButton.textContent = "Chime: tap to resume";
  document.addEventListener("pointerdown", resumeChime);
  document.addEventListener("keydown", resumeChime);
}

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch,
  channels: [station ? `kitchen:${station}` : "kitchen"],
  onEvent, onReset,
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
for (const node of cards()) {
  noteChange(node.dataset.id, node.dataset.changed, false);
  flash(node);
}
renumber();
tick();
loadRecent();
setInterval(tick, 1000);

// The kitchen display: tickets in fire order, timers, bump bar keys, live updates.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const list = document.getElementById("tickets");
const rid = screen.dataset.rid;
const station = screen.dataset.station;
const amber = Number(screen.dataset.amber);
const red = Number(screen.dataset.red);
const canBump = screen.dataset.canBump === "yes";
let selected = 0;
const recallStack = [];
const recallButton = document.getElementById("recall");
const chimeButton = document.getElementById("chime");
let audio = null;  // created on the tap that turns the chime on (browsers allow sound after a gesture)
const FRESH_MS = 6000;  // how long a new ticket stands out

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never markup
  return node;
}

function card(ticket) {
  const article = element("article", "ticket");
  article.dataset.id = ticket.id;
  article.dataset.fired = ticket.fired_at;
  article.dataset.status = ticket.status;
  article.tabIndex = 0;
  const header = element("header");
  header.append(element("span", "key"), element("strong", "where", ticket.table_label || `Order ${ticket.order_id}`),
                element("span", "timer", "0:00"));
  const meta = [ticket.server_name || "", ticket.guests ? `${ticket.guests} guests` : "", `course ${ticket.course}`,
                ticket.status === "started" ? "cooking" : ""].filter(Boolean).join(" · ");
  article.append(header, element("p", "meta", meta));
  if (ticket.order_note) article.append(element("p", "note", ticket.order_note));
  const items = element("ul");
  for (const item of ticket.items) {
    const line = element("li", `item ${item.status}`);
    Object.assign(line.dataset, { item: item.id, name: item.name, qty: item.qty, status: item.status });
    line.append(element("b", "", `${item.qty}×`), document.createTextNode(` ${item.name}`));
    for (const modifier of item.modifiers) line.append(element("span", "mod", modifier.name));
    if (item.note) line.append(element("span", "note", item.note));
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

function upsert(ticket, isNew = false) {
  const existing = list.querySelector(`.ticket[data-id="${ticket.id}"]`);
  if (ticket.status === "bumped") { existing?.remove(); renumber(); return; }
  const fresh = card(ticket);
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
}

function tick() {
  const now = Date.now();
  for (const node of cards()) {
    const seconds = Math.max(0, Math.floor((now - Date.parse(node.dataset.fired)) / 1000));
    const minutes = seconds / 60;
    node.querySelector(".timer").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    node.classList.toggle("amber", minutes >= amber && minutes < red);
    node.classList.toggle("red", minutes >= red);
  }
}

async function act(ticketId, action) {
  const response = await fetch(`/api/v1/restaurants/${rid}/kitchen/tickets/${ticketId}/${action}`,
                               { method: "POST", credentials: "same-origin" });
  if (response.ok) upsert(await response.json());
  return response.ok;
}

let bumping = Promise.resolve();  // the last bump in flight: a recall waits for it

async function bump(node) {
  if (!node) return;
  // Recallable at once: the socket may take the card away before the bump's own answer.
  const id = node.dataset.id;
  recallStack.push(id);
  recallButton.disabled = false;
  bumping = act(id, "bump");
  if (!(await bumping)) recallStack.splice(recallStack.lastIndexOf(id), 1);
  recallButton.disabled = recallStack.length === 0;
}

async function recall() {
  await bumping;
  const last = recallStack.pop();
  if (last) await act(last, "recall");
  recallButton.disabled = recallStack.length === 0;
}

if (canBump) {
  document.addEventListener("keydown", async (key) => {
    if (key.target.closest?.("button")) return;  // a focused button answers its own Enter/Space
    if (key.key >= "1" && key.key <= "9") select(Number(key.key) - 1);
    else if (key.key === "Enter" || key.key === " ") {
      key.preventDefault();
      await bump(cards()[selected]);
    } else if (key.key === "r" || key.key === "R") await recall();
  });
  recallButton.addEventListener("click", recall);
}

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
renumber();
tick();
setInterval(tick, 1000);

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
    Object.assign(line.dataset, { item: item.id, name: item.name, qty: item.qty });
    line.append(element("b", "", `${item.qty}×`), document.createTextNode(` ${item.name}`));
    for (const modifier of item.modifiers) line.append(element("span", "mod", modifier.name));
    if (item.note) line.append(element("span", "note", item.note));
    items.append(line);
  }
  article.append(items);
  article.addEventListener("click", () => select([...list.children].indexOf(article)));
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

function upsert(ticket) {
  const existing = list.querySelector(`.ticket[data-id="${ticket.id}"]`);
  if (ticket.status === "bumped") { existing?.remove(); renumber(); return; }
  const fresh = card(ticket);
  if (existing) existing.replaceWith(fresh);
  else {
    const later = cards().find((node) => Number(node.dataset.id) > ticket.id);  // fire order
    list.insertBefore(fresh, later || null);
  }
  renumber();
  tick();
}

function ours(channel) {
  return !station || channel === `kitchen:${station}`;
}

function onEvent(event) {
  if (!ours(event.channel)) return;
  if (event.data.ticket) upsert(event.data.ticket);
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

document.addEventListener("keydown", async (key) => {
  if (!canBump) return;
  if (key.key >= "1" && key.key <= "9") select(Number(key.key) - 1);
  else if (key.key === "Enter" || key.key === " ") {
    key.preventDefault();
    const node = cards()[selected];
    if (node && await act(node.dataset.id, "bump")) recallStack.push(node.dataset.id);
  } else if (key.key === "r" || key.key === "R") {
    const last = recallStack.pop();
    if (last) await act(last, "recall");
  }
});

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch,
  channels: [station ? `kitchen:${station}` : "kitchen"],
  onEvent, onReset,
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
renumber();
tick();
setInterval(tick, 1000);

// The host stand: a live floor map and the waitlist; seat a party by picking a table.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const rid = screen.dataset.rid;
const svg = document.getElementById("floor");
const list = document.getElementById("parties");
let seating = null;  // the party being seated, while the host picks a table

const minutesSince = (iso) => Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));

async function post(path, body) {
  const response = await fetch(`/api/v1/restaurants/${rid}${path}`, {
    method: "POST", credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return response.ok ? response.json() : null;
}

function applyTable(table) {
  const node = svg.querySelector(`.table[data-id="${table.id}"]`);
  if (!node) return;
  node.setAttribute("class", `table ${table.status}`);
  node.dataset.status = table.status;
  node.dataset.seated = table.seated_at || "";
  node.querySelector(".state").textContent = table.status.replace("_", " ");
  node.setAttribute("aria-label", `Table ${table.label}, ${table.seats} seats, ${table.status.replace("_", " ")}`);
  refresh();
}

function partyItem(party) {
  const item = document.createElement("li");
  item.className = `party ${party.status}`;
  Object.assign(item.dataset, { id: party.id, size: party.size, joined: party.joined_at,
                                quoted: party.quoted_minutes ?? "" });
  const line = document.createElement("div");
  const name = document.createElement("strong");
  name.className = "name";
  name.textContent = party.name;  // text, never markup
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = party.size;
  const wait = document.createElement("span");
  wait.className = "wait";
  line.append(name, " · ", size, " guests", wait);
  const actions = document.createElement("div");
  actions.className = "actions";
  const notify = document.createElement("button");
  notify.className = "notify";
  notify.textContent = "Notify";
  notify.disabled = party.status === "notified";
  const seat = document.createElement("button");
  seat.className = "seat";
  seat.textContent = "Seat";
  actions.append(notify, seat);
  item.append(line, actions);
  return item;
}

function applyParty(party) {
  const existing = list.querySelector(`.party[data-id="${party.id}"]`);
  const open = party.status === "waiting" || party.status === "notified";
  if (!open) existing?.remove();
  else if (existing) existing.replaceWith(partyItem(party));
  else list.append(partyItem(party));
  refresh();
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
}

function pick(party) {
  seating = party;
  screen.classList.toggle("picking", Boolean(party));
  document.getElementById("hint").hidden = !party;
  if (party) document.getElementById("hint-name").textContent = party.querySelector(".name").textContent;
}

list.addEventListener("click", async (click) => {
  const party = click.target.closest(".party");
  if (!party) return;
  if (click.target.classList.contains("notify")) {
    const updated = await post(`/waitlist/${party.dataset.id}/notify`);
    if (updated) applyParty(updated);
  } else if (click.target.classList.contains("seat")) pick(party);
});

svg.addEventListener("click", async (click) => {
  const table = click.target.closest(".table");
  if (!table || !seating) return;
  const updated = await post(`/waitlist/${seating.dataset.id}/seat`, { table_id: Number(table.dataset.id) });
  pick(null);
  if (updated) applyParty(updated);
});

document.addEventListener("keydown", (key) => { if (key.key === "Escape") pick(null); });

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch, channels: ["floor"],
  onEvent: (event) => {
    if (event.data.table) applyTable(event.data.table);
    if (event.data.party) applyParty(event.data.party);
  },
  onReset: (snapshot) => {
    snapshot.tables.forEach(applyTable);
    list.replaceChildren(...snapshot.waitlist.map(partyItem));
    refresh();
  },
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
refresh();
setInterval(refresh, 30000);

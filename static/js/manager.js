// The manager's desk: today's numbers and devices kept fresh, and the 86 board.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const rid = screen.dataset.rid;
const api = (path, options = {}) => fetch(`/api/v1/restaurants/${rid}${path}`, { credentials: "same-origin", ...options });
let refreshTimer = null;

function showItem(item) {
  const button = document.querySelector(`.item-toggle[data-item="${item.id}"]`);
  if (!button) return;
  button.classList.toggle("off", !item.available);
  button.setAttribute("aria-pressed", String(!item.available));
  button.querySelector(".state").textContent = item.available ? "on" : "86'd";
}

async function refreshNumbers() {
  refreshTimer = null;
  const response = await api("/dashboard");
  if (!response.ok) return;
  const numbers = await response.json();
  for (const node of document.querySelectorAll("#numbers .value")) {
    const value = numbers[node.dataset.key];
    node.textContent = "money" in node.dataset ? (value / 100).toFixed(2) : value;
  }
}

async function refreshDevices() {
  const response = await api("/devices?limit=200");
  if (!response.ok) return;
  const rows = (await response.json()).items.filter((d) => !d.revoked_at).map((d) => {
    const row = document.createElement("tr");
    row.dataset.id = d.id;
    if (d.alert) row.className = "alert";
    for (const text of [d.name, d.role, d.alert || (d.online ? "online" : "offline"), `${d.lag} events`]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  const table = document.getElementById("devices");
  table.replaceChildren(table.rows[0], ...rows);
}

document.getElementById("menu").addEventListener("click", async (click) => {
  const button = click.target.closest(".item-toggle");
  if (!button) return;
  const response = await api(`/menu/items/${button.dataset.item}/availability`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ available: button.classList.contains("off") }),
  });
  if (response.ok) showItem(await response.json());
});

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch,
  channels: ["manager", "menu", "orders", "floor", "kitchen"],
  onEvent: (event) => {
    if (event.name === "menu.item_availability") showItem(event.data.item);
    if (event.name.startsWith("device.")) refreshDevices();
    if (!refreshTimer) refreshTimer = setTimeout(refreshNumbers, 1000);  // at most once a second
  },
  onReset: (snapshot) => {
    for (const category of snapshot.menu.categories) category.items.forEach(showItem);
    refreshNumbers();
    refreshDevices();
  },
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
setInterval(refreshDevices, 15000);

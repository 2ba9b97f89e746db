// The manager's desk: today's numbers, hour-by-hour charts and alerts kept fresh, devices, the 86 board.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const rid = screen.dataset.rid;
const api = (path, options = {}) => fetch(`/api/v1/restaurants/${rid}${path}`, { credentials: "same-origin", ...options });
const NUMBERS_EVERY_MS = 1000;
const CHARTS_EVERY_MS = 5000;
const CLOCK_EVERY_MS = 30000;  // time alone makes a ticket late
let numbersTimer = null;
let chartsTimer = null;
let chartsAt = 0;
let shownLate = null;  // what the alert lists show now: an unchanged list (a live region) is left alone
let shownDevices = null;
const alerts = {  // how many of each the panel lists, for the count in its heading
  late: document.querySelectorAll("#late-tickets .alert-row").length,
  devices: document.querySelectorAll("#device-alerts .alert-row").length,
};

function showItem(item) {
  const button = document.querySelector(`.item-toggle[data-item="${item.id}"]`);
  if (!button) return;
  button.classList.toggle("off", !item.available);
  button.setAttribute("aria-pressed", String(!item.available));
  button.querySelector(".state").textContent = item.available ? "on" : "86'd";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Alerts ---------------------------------------------------------------------

function showAlertCount() {
  const total = alerts.late + alerts.devices;
  const count = document.getElementById("alert-count");
  count.textContent = total ? String(total) : "all clear";
  count.classList.toggle("clear", !total);
}

function alertRow(row, where, what, how) {
  row.classList.add("alert-row");
  row.append(element("span", "where", where), element("span", "what", what), element("span", "how", how));
  return row;
}

function showLate(tickets) {
  const key = JSON.stringify(tickets);
  if (key === shownLate) return;
  shownLate = key;
  const items = tickets.map((ticket) => {
    const link = document.createElement("a");
    link.href = `/r/${screen.dataset.slug}/kitchen?station=${encodeURIComponent(ticket.station)}`;
    link.dataset.id = ticket.id;
    const where = ticket.table_label ? `Table ${ticket.table_label}` : `Order ${ticket.order_id}`;
    const item = document.createElement("li");
    item.append(alertRow(link, where, ticket.station, `${ticket.minutes} min`));
    return item;
  });
  document.getElementById("late-tickets").replaceChildren(...(items.length ? items : [element("li", "none", "No late tickets.")]));
  alerts.late = tickets.length;
  showAlertCount();
}

function showDeviceAlerts(devices) {
  const alerting = devices.filter((d) => d.alert);
  const key = JSON.stringify(alerting.map((d) => [d.id, d.name, d.role, d.alert, d.lag]));
  if (key === shownDevices) return;
  shownDevices = key;
  const items = alerting.map((d) => {
    const item = alertRow(document.createElement("li"), d.name, d.role, d.alert === "dark" ? "dark" : `${d.lag} events behind`);
    item.dataset.id = d.id;
    return item;
  });
  document.getElementById("device-alerts").replaceChildren(
    ...(items.length ? items : [element("li", "none", "Every expected screen is up.")]));
  alerts.devices = items.length;
  showAlertCount();
}

// Numbers and devices --------------------------------------------------------

async function refreshNumbers() {
  numbersTimer = null;
  const response = await api("/dashboard");
  if (!response.ok) return;
  const numbers = await response.json();
  if (numbers.day_starts_at !== screen.dataset.day) {
    location.reload();  // a new day: fresh charts from the server
    return;
  }
  for (const node of document.querySelectorAll("#numbers .value")) {
    const value = numbers[node.dataset.key];
    node.textContent = "money" in node.dataset ? (value / 100).toFixed(2) : value;
  }
  showLate(numbers.late_tickets);
}

async function refreshDevices() {
  const response = await api("/devices?limit=200");
  if (!response.ok) return;
  const devices = (await response.json()).items.filter((d) => !d.revoked_at);
  const rows = devices.map((d) => {
    const row = document.createElement("tr");
    row.dataset.id = d.id;
    if (d.alert) row.className = "alert";
    for (const text of [d.name, d.role, d.alert || (d.online ? "online" : "offline"), `${d.lag} events`]) {
      row.append(element("td", "", text));
    }
    if (d.expected) row.cells[0].append(" ", element("span", "pill small", "expected"));
    return row;
  });
  const table = document.getElementById("devices");
  table.replaceChildren(table.rows[0], ...rows);
  showDeviceAlerts(devices);
}

// Charts: the server drew them; here the same rules move bars, marks and numbers in place.

const scaleTop = (values) => Math.max(4, Math.ceil(Math.max(0, ...values) / 4) * 4);
const whole = (minutes) => (minutes == null ? "–" : String(Math.floor(minutes + 0.5)));
const two = (hour) => String(hour % 24).padStart(2, "0");
const span = (hour) => `${two(hour)}:00–${two(hour + 1)}:00`;

function drawChart(svg, day, { bar, mark = () => null, rows, least = 0, tone = () => "", describe }) {
  const base = Number(svg.dataset.base);
  const height = base - Number(svg.dataset.top);
  const byHour = new Map(day.hours.map((hour) => [hour.hour, hour]));
  const columns = [...svg.querySelectorAll(".col")];
  const hours = columns.map((col) => byHour.get(Number(col.dataset.hour)));
  const top = scaleTop([least, ...hours.flatMap((hour) => [bar(hour) ?? 0, mark(hour) ?? 0])]);
  const y = (value) => (base - (height * value) / top).toFixed(1);
  svg.querySelector(".tick-top").textContent = String(top);
  svg.querySelector(".tick-mid").textContent = String(top / 2);
  const limit = svg.querySelector(".limit");
  if (limit) {
    limit.querySelector("line").setAttribute("y1", y(least));
    limit.querySelector("line").setAttribute("y2", y(least));
    limit.querySelector("text").setAttribute("y", (Number(y(least)) - 5).toFixed(1));
  }
  columns.forEach((col, i) => {
    const hour = hours[i];
    const value = bar(hour) ?? 0;
    const rect = col.querySelector(".amount");
    rect.setAttribute("y", y(value));
    rect.setAttribute("height", ((height * value) / top).toFixed(1));
    const toned = tone(bar(hour));
    if (toned) rect.setAttribute("class", `amount ${toned}`);
    const marker = col.querySelector(".mark");
    if (marker) {
      const at = mark(hour);
      marker.setAttribute("visibility", at == null ? "hidden" : "visible");
      marker.setAttribute("y1", y(at ?? 0));
      marker.setAttribute("y2", y(at ?? 0));
    }
    col.classList.toggle("current", hour.hour === day.current_hour);
    const texts = col.querySelectorAll(".value");
    rows(hour).forEach(([text, empty], k) => {
      texts[k].textContent = text;
      texts[k].classList.toggle("zero", empty);
    });
    col.querySelector("title").textContent = `${span(hour.hour)}: ${describe(hour)}`;
  });
}

function drawCovers(day) {
  drawChart(document.getElementById("covers-chart"), day, {
    bar: (hour) => hour.covers,
    rows: (hour) => [[String(hour.covers), !hour.covers], [String(hour.turns), !hour.turns]],
    describe: (hour) => `${hour.covers} covers at ${hour.turns} tables`,
  });
}

function drawTickets(day) {
  const svg = document.getElementById("ticket-chart");
  const amber = Number(svg.dataset.amber);
  const red = Number(svg.dataset.red);
  drawChart(svg, day, {
    bar: (hour) => hour.ticket_avg_minutes,
    mark: (hour) => hour.ticket_p90_minutes,
    least: red,
    tone: (avg) => (avg && avg >= red ? "red" : avg && avg >= amber ? "amber" : "ok"),
    rows: (hour) => [[whole(hour.ticket_avg_minutes), hour.ticket_avg_minutes == null],
                     [whole(hour.ticket_p90_minutes), hour.ticket_p90_minutes == null]],
    describe: (hour) => (hour.tickets
      ? `${hour.tickets} tickets, average ${hour.ticket_avg_minutes} min, 90% within ${hour.ticket_p90_minutes} min`
      : "no tickets"),
  });
}

async function refreshCharts() {
  chartsTimer = null;
  chartsAt = Date.now();
  const response = await api("/dashboard/hourly");
  if (!response.ok) return;
  const day = await response.json();
  const shown = new Set([...document.querySelectorAll("#covers-chart .col")].map((col) => Number(col.dataset.hour)));
  const outside = day.hours.some((hour) => (hour.covers || hour.tickets) && !shown.has(hour.hour));
  if (day.date !== screen.dataset.date || outside) {
    location.reload();  // the charts need other hours than the server drew
    return;
  }
  drawCovers(day);
  drawTickets(day);
}

function scheduleNumbers() {
  if (!numbersTimer) numbersTimer = setTimeout(refreshNumbers, NUMBERS_EVERY_MS);
}

function scheduleCharts() {  // a burst of events costs one request, and never more than one per 5 s
  if (!chartsTimer) chartsTimer = setTimeout(refreshCharts, Math.max(1000, chartsAt + CHARTS_EVERY_MS - Date.now()));
}

const CHART_EVENTS = /^(order|item|ticket|table)\.|^waitlist\.updated$/;

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
    if (event.name === "restaurant.updated") location.reload();  // hours, thresholds or time zone
    if (event.name === "menu.item_availability") showItem(event.data.item);
    if (event.name.startsWith("device.")) refreshDevices();
    if (CHART_EVENTS.test(event.name)) scheduleCharts();
    scheduleNumbers();
  },
  onReset: (snapshot) => {
    for (const category of snapshot.menu.categories) category.items.forEach(showItem);
    refreshNumbers();
    refreshDevices();
    refreshCharts();
  },
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
setInterval(refreshDevices, 15000);

document.getElementById("pair").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const form = submit.target;
  const [screenName, station] = form.screen.value.split(":");
  const body = { code: form.code.value, name: form.name.value, screen: screenName, expected: form.expected.checked };
  if (station) body.station = station;
  const response = await api("/devices/pair", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  const result = document.getElementById("pair-result");
  result.hidden = false;
  result.className = response.ok ? "ok" : "error";
  result.textContent = response.ok ? `Paired “${answer.device.name}”: the screen opens ${answer.screen} now.`
    : answer.error.message.charAt(0).toUpperCase() + answer.error.message.slice(1) + ".";
  if (response.ok) { form.reset(); refreshDevices(); }
});
setInterval(refreshNumbers, CLOCK_EVERY_MS);

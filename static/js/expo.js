// The expo screen: orders whose tickets are all bumped, until their food is served.
import { connectLive } from "./live.js";

const screen = document.getElementById("screen");
const rid = screen.dataset.rid;
const canServe = screen.dataset.canServe === "yes";
const list = document.getElementById("orders");
const api = (path, options = {}) => fetch(`/api/v1/restaurants/${rid}${path}`, { credentials: "same-origin", ...options });
let pending = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never markup
  return node;
}

function card(order) {
  const article = element("article", "ticket pass");
  article.dataset.order = order.order_id;
  const header = element("header");
  header.append(element("strong", "where", order.table_label || `Order ${order.order_id}`));
  const items = element("ul");
  for (const item of order.items) {
    const line = element("li", "item ready");
    line.dataset.item = item.id;
    line.append(element("b", "", `${item.qty}×`), document.createTextNode(` ${item.name}`));
    for (const modifier of item.modifiers) line.append(element("span", "mod", modifier.name));
    items.append(line);
  }
  article.append(header, element("p", "meta", order.server_name || ""), items);
  if (canServe) article.append(element("button", "serve", "Served"));
  return article;
}

async function reload() {
  pending = null;
  const response = await api("/kitchen/expo?limit=200");
  if (!response.ok) return;
  const orders = (await response.json()).items;
  list.replaceChildren(...orders.map(card));
  document.getElementById("count").textContent = `${orders.length} at the pass`;
  document.getElementById("empty").hidden = orders.length > 0;
}

list.addEventListener("click", async (click) => {
  if (!click.target.classList.contains("serve")) return;
  const order = click.target.closest(".ticket");
  for (const line of order.querySelectorAll("li[data-item]")) {
    await api(`/orders/${order.dataset.order}/items/${line.dataset.item}/serve`, { method: "POST" });
  }
  reload();
});

connectLive({
  rid, seq: screen.dataset.seq, epoch: screen.dataset.epoch, channels: ["orders", "kitchen"],
  onEvent: () => { if (!pending) pending = setTimeout(reload, 150); },  // one read per burst
  onReset: reload,
  onState: (online) => { document.getElementById("offline").hidden = online; },
});
// Server-rendered cards carry no item ids: fetch once so "Served" knows them.
reload();

// A screen waiting to be paired: ask every two seconds whether a manager has claimed
// the code; once one has, the answer signs this browser in as the device and says where to go.
const card = document.getElementById("pairing");
const expires = Date.parse(card.dataset.expires);
const POLL_MS = 2000;

function showExpired() {
  document.getElementById("status").hidden = true;
  document.getElementById("expired").hidden = false;
  document.getElementById("again").hidden = false;
  document.getElementById("code").classList.add("expired");
}

async function poll() {
  document.getElementById("left").textContent = String(Math.max(1, Math.ceil((expires - Date.now()) / 60000)));
  let response;
  try {
    response = await fetch("/pair/collect", { method: "POST", credentials: "same-origin" });
  } catch {
    setTimeout(poll, POLL_MS);  // the Wi-Fi dropped: keep asking
    return;
  }
  if (response.status === 200) {
    location.replace((await response.json()).next);
  } else if (response.status === 410) {
    showExpired();
  } else {
    setTimeout(poll, POLL_MS);
  }
}

setTimeout(poll, POLL_MS);

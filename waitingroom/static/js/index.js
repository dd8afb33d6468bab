// The concerts on sale with live queue figures, and joining a queue.
import { $, api, duration, num, saveTicket, setUserId, text, ticket, userId } from "./common.js";

const POLL_MS = 4000;
const rows = new Map(); // concert id → its list item, updated in place
let timer = 0;

function showWho() {
  const id = userId();
  $("#who-known").hidden = !id;
  $("#who-form").hidden = !!id;
  if (id) text($("#who-id"), id);
}

function say(message) {
  $("#message").innerHTML = message ? `<p class="notice bad"></p>` : "";
  if (message) $("#message p").textContent = message;
}

function row(c) {
  let li = rows.get(c.id);
  if (!li) {
    li = document.createElement("li");
    li.className = "card";
    li.innerHTML = `<h2></h2><p class="muted host"></p>
      <dl class="figures">
        <dt>Waiting</dt><dd class="waiting"></dd>
        <dt>Let in per second</dt><dd class="rate"></dd>
        <dt>Wait if you join now</dt><dd class="eta"></dd>
      </dl>
      <button type="button" class="join">Join the queue</button>`;
    li.querySelector(".join").addEventListener("click", () => join(c.id, li));
    rows.set(c.id, li);
  }
  const q = c.queue;
  text(li.querySelector("h2"), c.name);
  text(li.querySelector(".host"), c.host);
  text(li.querySelector(".waiting"), num(q.waiting));
  text(li.querySelector(".rate"), q.paused ? "paused" : num(q.admit_rate));
  const eta = q.paused || !q.admit_rate ? "paused by the organiser"
    : duration(Math.ceil((q.waiting + 1) / q.admit_rate));
  text(li.querySelector(".eta"), eta);
  li.querySelector(".join").setAttribute("aria-label", `Join the queue for ${c.name}`);
  return li;
}

async function refresh() {
  clearTimeout(timer);
  try {
    const concerts = await api("GET", "/api/v1/concerts");
    const list = $("#concerts");
    const seen = new Set();
    concerts.forEach((c, i) => {
      const li = row(c);
      seen.add(c.id);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    for (const [id, li] of rows) if (!seen.has(id)) { li.remove(); rows.delete(id); }
    $("#empty").hidden = concerts.length > 0;
    text($("#updated"), "Figures refresh every few seconds. Last update " + new Date().toLocaleTimeString());
  } catch (e) {
    text($("#updated"), "Could not refresh the figures (" + e.message + "); trying again shortly.");
  }
  if (document.visibilityState === "visible") timer = setTimeout(refresh, POLL_MS);
}

async function join(concertId, li) {
  say("");
  const user = userId();
  if (!user) {
    say("First tell us your user id, or make a demo one.");
    $("#who-input").focus();
    return;
  }
  const button = li.querySelector(".join");
  button.disabled = true;
  try {
    const t = await api("POST", `/api/v1/concerts/${concertId}/queue`, { body: { user_id: user } });
    const old = ticket(concertId);
    saveTicket(concertId, {
      token: t.token, expires_at: t.expires_at,
      first: old && old.token === t.token ? old.first : t.position,
    });
    location.assign((t.state === "AVAILABLE" ? "/book/" : "/queue/") + concertId);
  } catch (e) {
    say(e.code === "validation_error" ? "That user id is not valid: use a whole number from 1 up."
      : e.code === "network" ? "The server could not be reached. Check your connection and try again."
      : "Could not join the queue: " + e.message);
    button.disabled = false;
  }
}

$("#who-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = Number($("#who-input").value);
  if (!Number.isSafeInteger(id) || id < 1) { say("A user id is a whole number from 1 up."); return; }
  say("");
  setUserId(id);
  showWho();
});
$("#who-demo").addEventListener("click", () => {
  setUserId(1_000_000 + Math.floor(Math.random() * 1_000_000_000));
  say("");
  showWho();
});
$("#who-change").addEventListener("click", () => {
  $("#who-known").hidden = true;
  $("#who-form").hidden = false;
  $("#who-input").value = userId() || "";
  $("#who-input").focus();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh(); else clearTimeout(timer);
});

showWho();
refresh();

// The concerts on sale with live queue figures, signing in, and joining a queue.
import { $, api, duration, notice, num, saveTicket, text, ticket, tooSoon, tryAgainIn, userId } from "./common.js";
import { claimsOf, devSignIn, identity, joinQueue, signIn, validUserId } from "./identity.js";

const POLL_MS = 4000;
const rows = new Map(); // concert id → its list item, updated in place
let timer = 0, refreshing = false;
const NETWORK = "The server could not be reached. Check your connection and try again.";
const ELSEWHERE = "Sign-in happens on the site that sells the tickets: it sends you here signed in, "
  + "with a link to /?identity=….";

function showWho() {
  const id = identity() && userId();
  $("#who-known").hidden = !id;
  $("#who-form").hidden = !!id;
  if (id) text($("#who-id"), id);
}

function say(message, kind = "bad") {
  notice($("#message"), message, kind);
}

/** Sign in as user `id` (a decimal string) through the demo sign-in, where there is one. */
async function signInAs(id) {
  if (tooSoon()) { say(tryAgainIn(tooSoon()), "warn"); return; }
  say("");
  try {
    await devSignIn(id);
    showWho();
  } catch (e) {
    if (e.code === "not_found") say(ELSEWHERE, "warn");
    else if (e.code === "rate_limited") say(tryAgainIn(e.retryAfter), "warn");
    else say(e.code === "network" ? NETWORK : "Could not sign you in: " + e.message);
  }
}

/** A selling site sends its users to /?identity=<JWT>: keep it, and take it out of the address. */
function fromLink() {
  const url = new URL(location.href);
  const jwt = url.searchParams.get("identity");
  if (jwt === null) return;
  url.searchParams.delete("identity");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  const c = claimsOf(jwt);
  if (!c) say("That sign-in link is not valid. Follow the link from the site that sells the tickets again.");
  else if (c.exp * 1000 <= Date.now()) say("That sign-in link has expired. Follow the link from the site that sells the tickets again.");
  else signIn(jwt, c.sub);
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
  const eta = q.sold_out ? "sold out for now: you keep a place in case seats come back"
    : q.paused || !q.admit_rate ? "paused by the organiser"
    : duration(Math.ceil((q.waiting + 1) / q.admit_rate));
  li.classList.toggle("sold-out", Boolean(q.sold_out));
  text(li.querySelector(".eta"), eta);
  li.querySelector(".join").setAttribute("aria-label", `Join the queue for ${c.name}`);
  return li;
}

async function refresh() {
  clearTimeout(timer);
  if (refreshing) return; // one call at a time, however long a busy server makes it wait
  refreshing = true;
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
  refreshing = false;
  if (document.visibilityState === "visible") timer = setTimeout(refresh, POLL_MS);
}

async function join(concertId, li) {
  say("");
  if (!identity() && !userId()) {
    say("First sign in: enter your user id, or sign in as a demo user.");
    $("#who-input").focus();
    return;
  }
  const button = li.querySelector(".join");
  button.disabled = true;
  try {
    const t = await joinQueue(concertId);
    const old = ticket(concertId);
    saveTicket(concertId, {
      token: t.token, expires_at: t.expires_at,
      first: old && old.token === t.token ? old.first : t.position,
    });
    location.assign((t.state === "AVAILABLE" ? "/book/" : "/queue/") + concertId);
  } catch (e) {
    if (e.code === "signed_out") {
      showWho();
      $("#who-input").value = userId() || "";
      $("#who-input").focus();
    }
    say(e.code === "signed_out" ? e.message
      : e.code === "network" ? NETWORK
      : "Could not join the queue: " + e.message);
    button.disabled = false;
  }
}

$("#who-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const raw = $("#who-input").value.trim();
  const id = /^[0-9]{1,20}$/.test(raw) ? String(BigInt(raw)) : "";
  if (!validUserId(id)) { say("A user id is a whole number from 1 up."); return; }
  signInAs(id);
});
$("#who-demo").addEventListener("click", () => signInAs(String(1_000_000 + Math.floor(Math.random() * 1_000_000_000))));
$("#who-change").addEventListener("click", () => {
  $("#who-known").hidden = true;
  $("#who-form").hidden = false;
  $("#who-input").value = userId() || "";
  $("#who-input").focus();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh(); else clearTimeout(timer);
});

fromLink();
showWho();
refresh();

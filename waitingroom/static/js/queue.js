// The waiting page: a live place in line over a WebSocket, reconnecting by itself, polling
// when WebSockets fail, and on to booking when admitted.
import {
  $, api, clock, duration, dropTicket, everySecond, limits, localTime, num, pathId, roughly, saveTicket, text, ticket,
  tooSoon, tryAgainIn, userId,
} from "./common.js";

const concertId = pathId();
const POLL_MS = 2500;
const POLL_AFTER_FAILURES = 3;
const MAX_BACKOFF_MS = 30000;
const GO_AFTER_MS = 3000;
const PING_MS = 20000; // a socket that hears nothing for two of these is taken for dead
const ENDED = {
  timeout: ["Your time ran out", "Your booking window closed before you finished. You can queue again."],
  left: ["You left the queue", "You gave up your place. You can queue again if you change your mind."],
  completed: ["You're all booked", "Your payment went through."],
  dropped: ["Your place was given up",
    "This page was closed or offline for too long, so your place went to the next person. You can queue again."],
  unknown: ["We could not find your place", "Your queue ticket is not valid any more. You can queue again."],
  signed_out: ["Your sign-in has expired", "Sign in again on the concerts page, then join the queue."],
};

let t = ticket(concertId); // {token, first, expires_at}
let position = null, eta = null;
let conn = "connecting"; // connecting | live | reconnecting | polling
let ws = null, failures = 0, retryTimer = 0, pollTimer = 0, pingTimer = 0, polling = false, finished = false;
let lastHeard = 0;
let lastAnnounce = 0, stopCountdown = null;

// -- showing ---------------------------------------------------------------------------
function status() {
  if (finished) return;
  let s;
  if (conn === "reconnecting") s = "Connection lost — reconnecting… You keep your place.";
  else if (position === null) s = "Finding your place in line…";
  else if (eta === null) s = "The queue is paused by the organiser. You keep your place; it moves again when they resume.";
  else if (position === 1) s = "You're next! Keep this page open.";
  else s = "You're in line. Keep this page open; it updates by itself.";
  if (conn === "polling") s += " (Live updates are unavailable here, so this page checks every few seconds.)";
  text($("#status"), s);
}

function showPlace(pos, etaSeconds) {
  position = pos;
  eta = etaSeconds;
  if (!t.first || pos > t.first) { t.first = pos; saveTicket(concertId, t); }
  text($("#position"), num(pos));
  text($("#ahead"), num(pos - 1));
  text($("#eta"), etaSeconds === null ? "paused" : duration(etaSeconds));
  const bar = $("#progress");
  const span = Math.max(t.first - 1, 1);
  bar.max = span;
  bar.value = t.first === 1 ? span : t.first - pos;
  text($("#progress-text"), t.first === pos
    ? `You joined at number ${num(t.first)}.`
    : `You joined at number ${num(t.first)}; ${num(t.first - pos)} of the ${num(t.first - 1)} people ahead of you have gone through.`);
  // Tell screen readers now and then, not every second.
  const now = Date.now();
  if (now - lastAnnounce > 15000 || pos <= 3) {
    lastAnnounce = now;
    text($("#announce"), `You are number ${num(pos)} in line.`);
  }
  status();
}

function setConn(c) {
  conn = c;
  status();
}

function dropSocket() {
  clearInterval(pingTimer);
  if (!ws) return;
  const sock = ws;
  ws = null;
  sock.onopen = sock.onclose = sock.onmessage = null;
  try { sock.close(1000); } catch { /* already closed */ }
}

function stopAll() {
  finished = true;
  clearTimeout(retryTimer);
  stopPolling();
  dropSocket();
}

function admitted(expiresAt) {
  if (finished) return;
  stopAll();
  t.expires_at = expiresAt;
  saveTicket(concertId, t);
  $("#waiting").hidden = true;
  $("#admitted").hidden = false;
  text($("#deadline"), localTime(expiresAt));
  stopCountdown = everySecond(() => text($("#deadline-left"), clock(expiresAt)));
  text($("#status"), `It's your turn! Book before ${localTime(expiresAt)}. Taking you to the seats…`);
  const go = "/book/" + concertId;
  $("#go").href = go;
  setTimeout(() => location.assign(go), GO_AFTER_MS);
}

function ended(reason) {
  if (finished) return;
  stopAll();
  if (stopCountdown) stopCountdown();
  if (reason !== "completed") dropTicket(concertId);
  const [title, body] = ENDED[reason] || ENDED.unknown;
  $("#waiting").hidden = true;
  $("#admitted").hidden = true;
  $("#ended").hidden = false;
  text($("#ended-title"), title);
  text($("#ended-text"), body);
  text($("#status"), title + ". " + body);
  $("#again").hidden = reason === "completed" || reason === "signed_out";
  if (reason === "signed_out") text($("#home"), "Sign in again"); // the concerts page signs in
  if (reason === "completed") {
    const a = document.createElement("a");
    a.className = "button";
    a.href = "/book/" + concertId;
    a.textContent = "See your tickets";
    $("#ended-text").after(a);
  }
}

function apply(s) {
  if (s.state === "AVAILABLE") admitted(s.expires_at);
  else if (s.state === "EXPIRED") ended(s.reason);
  else showPlace(s.position, s.eta_seconds);
}

// -- the WebSocket, with backoff and jitter --------------------------------------------
function socketUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/queue?token=${encodeURIComponent(t.token)}`;
}

function connect() {
  clearTimeout(retryTimer);
  if (finished || ws) return;
  let sock;
  try {
    sock = new WebSocket(socketUrl());
  } catch {
    lost(1006);
    return;
  }
  ws = sock;
  sock.onopen = () => {
    lastHeard = Date.now();
    clearInterval(pingTimer);
    pingTimer = setInterval(() => {
      // A half-open connection (sleeping laptop, dropped NAT entry) never closes by itself.
      if (Date.now() - lastHeard > 2 * PING_MS) { dropSocket(); lost(1006); return; }
      sock.send('{"type":"ping"}');
    }, PING_MS);
  };
  sock.onmessage = (ev) => {
    lastHeard = Date.now();
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    failures = 0;
    if (polling) stopPolling();
    if (conn !== "live") setConn("live");
    if (f.type === "position") showPlace(f.position, f.eta_seconds);
    else if (f.type === "admitted") admitted(f.expires_at);
    else if (f.type === "expired") ended(f.reason);
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    clearInterval(pingTimer);
    ws = null;
    lost(ev.code);
  };
}

function lost(code) {
  if (finished) return;
  if (code === 4401) { ended("unknown"); return; }
  if (code === 4410) { pollOnce(); return; } // the expired frame normally came first
  failures += 1;
  if (!polling) setConn("reconnecting");
  if (failures >= POLL_AFTER_FAILURES) startPolling();
  // Exponential backoff with jitter, so a restarted server is not hit by everyone at once; never
  // sooner than a busy server asked.
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(failures - 1, 10));
  retryTimer = setTimeout(connect, Math.max(tooSoon() * 1000, base / 2 + Math.random() * base / 2));
}

// -- polling, when WebSockets keep failing --------------------------------------------
async function pollOnce() {
  try {
    apply(await api("GET", "/api/v1/queue", { token: t.token }));
    return true;
  } catch (e) {
    if (e.code === "token_invalid") ended("unknown");
    else if (e.code === "token_expired") ended("timeout");
    return false;
  }
}

function startPolling() {
  if (polling || finished) return;
  polling = true;
  const tick = async () => {
    const ok = await pollOnce();
    if (!polling || finished) return;
    if (ok && conn !== "polling") setConn("polling");
    if (!ok && conn !== "reconnecting") setConn("reconnecting");
    pollTimer = setTimeout(tick, POLL_MS * (0.8 + Math.random() * 0.4));
  };
  tick();
}

function stopPolling() {
  polling = false;
  clearTimeout(pollTimer);
}

// -- start ----------------------------------------------------------------------------
async function join() {
  // Loaded only to join here: most come with a ticket from the concerts page.
  const { identity, joinQueue } = await import("./identity.js");
  if (!identity() && !userId()) { location.replace("/"); return false; }
  const j = await joinQueue(concertId);
  t = { token: j.token, first: t && t.token === j.token ? t.first : j.position, expires_at: j.expires_at };
  saveTicket(concertId, t);
  apply(j);
  return true;
}

async function start() {
  const user = userId();
  if (user) text($("#who"), "User " + user);
  api("GET", "/api/v1/concerts").then((all) => {
    const c = all.find((x) => x.id === concertId);
    if (c) { text($("#title"), "Waiting room: " + c.name); document.title = c.name + " — waiting room"; }
  }).catch(() => {});
  try {
    if (!t) {
      if (!await join()) return;
    } else {
      try {
        apply(await api("GET", "/api/v1/queue", { token: t.token }));
      } catch (e) {
        if (e.code !== "token_invalid") throw e;
        dropTicket(concertId);
        t = null;
        if (!await join()) return;
      }
    }
  } catch (e) {
    if (e.code === "signed_out") { ended("signed_out"); return; }
    if (e.code === "not_found") {
      text($("#status"), "There is no such concert.");
      finished = true;
      return;
    }
    if (!t) {
      text($("#status"), "Could not reach the server to join the queue; trying again…");
      setTimeout(start, 3000);
      return;
    }
    // The server is unreachable or busy: the socket's retries take it from here.
  }
  if (t && !finished) connect();
}

$("#leave").addEventListener("click", async () => {
  if (tooSoon()) { text($("#status"), tryAgainIn(tooSoon())); return; }
  if (!confirm("Give up your place in line?")) return;
  try {
    await api("DELETE", "/api/v1/queue", { token: t.token });
    ended("left");
  } catch (e) {
    text($("#status"), e.code === "rate_limited" ? tryAgainIn(e.retryAfter)
      : "Could not leave the queue just now: " + e.message);
  }
});
$("#again").addEventListener("click", () => { dropTicket(concertId); location.reload(); });
addEventListener("online", () => { if (!finished && !ws) { failures = 0; connect(); } });
addEventListener("offline", () => { if (!finished) setConn("reconnecting"); });
// How long a closed page keeps its place is the server's to say.
limits().then((l) => { if (l) text($("#grace"), roughly(l.wait_grace_seconds)); });

start();

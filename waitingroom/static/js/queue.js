// The waiting page: a live place in line over a WebSocket, reconnecting by itself, polling
// when WebSockets fail, and the moment of admission. What the wait can be used for (previews,
// the balance, a sound or a notification at one's turn) comes in later, from prepare.js.
import {
  $, api, clock, dropTicket, everySecond, hourMinute, limits, localTime, minutes, num, pathId, roughly,
  saveTicket, text, ticket, tooSoon, tryAgainIn, userId,
} from "./common.js";
import { receipts, showReceipts } from "./receipt.js";

const concertId = pathId();
const POLL_MS = 2500;
const POLL_AFTER_FAILURES = 3;
const MAX_BACKOFF_MS = 30000;
const PING_MS = 15000; // a socket that hears nothing for two of these is taken for dead
const ENDED = {
  timeout: ["Your time ran out", "Your booking window closed before you finished. You can queue again."],
  left: ["You left the queue", "You gave up your place. You can queue again if you change your mind."],
  completed: ["You're booked", "Your payment went through."],
  dropped: ["Your place was given up",
    "This page was closed or offline for too long, so your place went to the next person. You can queue again."],
  unknown: ["We could not find your place", "Your queue ticket is not valid any more. You can queue again."],
  signed_out: ["Your sign-in has expired", "Sign in again on the concerts page, then join the queue."],
  missing: ["We can't find that concert",
    "There is no concert at this address: it may have been taken off sale, or the link may be mistyped."],
};
const JOIN_KEY = "wr.join." + concertId; // set by a deliberate "join again", used once

let t = ticket(concertId); // {token, first, expires_at}
let position = null, eta = null, rate = null, soldOut = false;
let conn = "connecting"; // connecting | live | reconnecting | polling
let ws = null, failures = 0, retryTimer = 0, pollTimer = 0, pingTimer = 0, polling = false, finished = false;
let lastHeard = 0, heard = null;
let lastAnnounce = 0, stopCountdown = null, concertName = "", extras = null;
let opensAt = null, stopOpening = null; // in the pre-queue: the scheduled opening

// -- showing ---------------------------------------------------------------------------
function status() {
  if (finished) return;
  const offline = conn === "reconnecting";
  $("#status").classList.toggle("offline", offline);
  $("#waiting").classList.toggle("stale", offline);
  for (const e of document.querySelectorAll(".last-known")) e.hidden = !offline || position === null;
  let s;
  if (offline) s = "Connection lost — reconnecting… You keep your place. The figures below are the last known.";
  else if (opensAt) s = Date.parse(opensAt) > Date.now()
    ? "You're in the pre-queue. Keep this page open: your place in line is drawn at the opening."
    : "The sale is opening: drawing the order of everyone who came before it…";
  else if (soldOut) s = "Every seat is held or sold just now. You keep your place: if seats come back on sale, the line moves again.";
  else if (position === null) s = "Finding your place in line…";
  else if (eta === null) s = "The queue is paused by the organiser. You keep your place; it moves again when they resume.";
  else if (position === 1) s = "You're next! Keep this page open.";
  else s = "You're in line. Keep this page open; it updates by itself.";
  if (conn === "polling") s += " (Live updates are unavailable here, so this page checks every few seconds.)";
  text($("#status"), s);
  if (heard) text($("#updated"), (offline ? "Last heard from the server at " : "Updated ") + localTime(heard));
}

/** The concert sold out (or, false, has seats on sale again): say so plainly. */
function setSoldOut(now) {
  const was = soldOut;
  soldOut = now;
  $("#sold-out").hidden = !now;
  if (now) {
    $("#paused").hidden = true;
    $("#moving").hidden = true;
    text($("#eta"), "sold out");
    delete $("#eta").dataset.seconds;
    text($("#eta-at"), "");
    if (!was) text($("#announce"), "Sold out for now. You keep your place in case seats come back.");
  } else if (was) {
    text($("#announce"), "Seats are back on sale: the line moves again.");
  }
  beat();
}

/** Waiting for a scheduled opening: a countdown to it, no place yet (the draw gives one). */
function showPreQueue(at) {
  beat();
  if (opensAt === at) return;
  opensAt = at;
  $("#place").hidden = true;
  $("#moving").hidden = true;
  $("#pre-queue").hidden = false;
  $("#draw-link").href = `/api/v1/concerts/${concertId}/draw`;
  text($("#opens-at"), at ? "at " + localTime(at) : "");
  if (stopOpening) stopOpening();
  stopOpening = everySecond(() => {
    const open = !opensAt || Date.parse(opensAt) <= Date.now();
    text($("#opens-in"), open ? "now" : clock(opensAt));
    document.title = open ? `Opening — ${concertName || "Waiting room"}`
      : `Opens in ${clock(opensAt)} — ${concertName || "Waiting room"}`;
    status();
  });
  text($("#announce"), "You're in the pre-queue. The sale opens at " + localTime(at) + ".");
}

function leavePreQueue() {
  if (stopOpening) { stopOpening(); stopOpening = null; }
  opensAt = null;
  $("#pre-queue").hidden = true;
  $("#place").hidden = false;
}

/** A frame or poll was heard: the figures are current as of now. */
function beat() {
  heard = new Date();
  status();
}

/** The ETA's range in words: "about 40–50 seconds", "about 4–6 minutes", "about 2–3 hours". */
function waitWords(etaSeconds, range) {
  const [low, high] = range ? [Math.min(range[0], etaSeconds), Math.max(range[1], etaSeconds)] : [etaSeconds, etaSeconds];
  const words = (l, h, unit) => (l === h ? `about ${l} ${unit}${l === 1 ? "" : "s"}` : `about ${l}–${h} ${unit}s`);
  if (high < 60) return words(Math.max(1, low), Math.max(1, high), "second");
  const lo = Math.round(low / 60), hi = Math.max(1, Math.round(high / 60));
  if (hi >= 90) return words(Math.max(1, Math.round(low / 3600)), Math.round(high / 3600), "hour");
  if (lo === 0) return `under ${hi === 1 ? "a minute" : hi + " minutes"}`;
  return words(lo, hi, "minute");
}

function showPlace(pos, etaSeconds, admitRate, range) {
  if (opensAt !== null || stopOpening) leavePreQueue();
  // The wait shown never grows while the line moves at an unchanged rate: an estimate that rises
  // while people go through reads as going backwards. A stalled line or a new rate may raise it.
  const moved = position !== null && pos < position;
  const sameRate = admitRate === undefined || rate === null || admitRate === rate;
  if (etaSeconds !== null && eta !== null && etaSeconds > eta && moved && sameRate) etaSeconds = eta;
  if (admitRate !== undefined) rate = admitRate;
  position = pos;
  eta = etaSeconds;
  if (soldOut) setSoldOut(false);
  if (!t.first || pos > t.first) { t.first = pos; saveTicket(concertId, t); }
  text($("#position"), num(pos));
  const etaBox = $("#eta");
  if (etaSeconds === null) {
    text(etaBox, "paused");
    delete etaBox.dataset.seconds;
    text($("#eta-at"), "");
  } else {
    text(etaBox, waitWords(etaSeconds, range));
    etaBox.dataset.seconds = etaSeconds;
    text($("#eta-at"), "around " + hourMinute(Date.now() + etaSeconds * 1000));
  }
  $("#paused").hidden = etaSeconds !== null;
  $("#moving").hidden = etaSeconds === null;
  const bar = $("#progress");
  const span = Math.max(t.first - 1, 1);
  bar.max = span;
  bar.value = Math.min(span, t.first - pos);
  text($("#progress-text"), t.first === 1 ? "You joined at the front of the line."
    : t.first === pos ? `You joined at place ${num(t.first)}.`
    : `You joined at place ${num(t.first)}; ${num(t.first - pos)} of the ${num(t.first - 1)} people ahead of you have gone through.`);
  document.title = `${num(pos)} in line — ${concertName || "Waiting room"}`;
  // Tell screen readers now and then, not every second.
  const now = Date.now();
  if (now - lastAnnounce > 15000 || pos <= 3) {
    lastAnnounce = now;
    text($("#announce"), `Your place in line: ${num(pos)}. ` + (etaSeconds === null ? "The queue is paused."
      : `Estimated wait ${waitWords(etaSeconds, range)}.`));
  }
  beat();
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
  if (stopOpening) { stopOpening(); stopOpening = null; }
  // The card that follows says it all: the status line stays for screen readers only.
  $("#status").classList.remove("offline");
  $("#status").classList.add("visually-hidden");
  if (extras) extras.stop();
}

function admitted(expiresAt) {
  if (finished) return;
  const live = position !== null; // admitted while this page watched, not found so on arrival
  stopAll();
  t.expires_at = expiresAt;
  saveTicket(concertId, t);
  $("#waiting").hidden = true;
  $("#prepare").hidden = true;
  $("#admitted").hidden = false;
  text($("#deadline"), localTime(expiresAt));
  stopCountdown = everySecond(() => {
    const left = clock(expiresAt);
    text($("#deadline-left"), left);
    document.title = `Your turn — ${left}`;
  });
  text($("#status"), `It's your turn! Choose your seats and pay before ${localTime(expiresAt)}.`);
  $("#go").href = "/book/" + concertId;
  $("#go").focus();
  if (live && extras) extras.ring(concertName, expiresAt);
}

function ended(reason) {
  if (reason === "missing") text($("#title"), "Concert not found");
  if (finished) return;
  stopAll();
  if (stopCountdown) stopCountdown();
  if (reason !== "completed" && reason !== "missing") dropTicket(concertId);
  const [title, body] = ENDED[reason] || ENDED.unknown;
  const mine = reason === "completed" ? receipts(concertId) : [];
  for (const id of ["#waiting", "#admitted", "#prepare"]) $(id).hidden = true;
  $("#ended").hidden = false;
  text($("#ended-title"), title);
  text($("#ended-text"), mine.length ? (mine.length === 1 ? "Your tickets:" : "Your tickets, newest first:") : body);
  showReceipts($("#receipts"), mine);
  text($("#status"), title + ". " + (mine.length ? "Your tickets are below." : body));
  document.title = title;
  $("#again").hidden = reason === "signed_out" || reason === "missing";
  text($("#again"), reason === "completed" ? "Buy more tickets" : "Join the queue again");
  if (reason === "signed_out") text($("#home"), "Sign in again"); // the concerts page signs in
  if (reason === "missing") text($("#home"), "See the concerts on sale");
  $("#home").classList.toggle("secondary", !$("#again").hidden);
}

function apply(s) {
  if (s.state === "AVAILABLE") admitted(s.expires_at);
  else if (s.state === "EXPIRED") ended(s.reason);
  else if (s.pre_queue) showPreQueue(s.opens_at);
  else if (s.sold_out) { if (s.position) position = s.position; text($("#position"), num(s.position)); setSoldOut(true); }
  else showPlace(s.position, s.eta_seconds, undefined, s.eta_range);
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
    if (f.type === "position") showPlace(f.position, f.eta_seconds, f.admit_rate, f.eta_range);
    else if (f.type === "pre_queue") showPreQueue(f.opens_at);
    else if (f.type === "admitted") admitted(f.expires_at);
    else if (f.type === "expired") ended(f.reason);
    else if (f.type === "sold_out") setSoldOut(true);
    else if (f.type === "pong") beat();
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
  // Anything else keeps the place: 1001 (that server is going away), 1011/1013 (the server cannot
  // reach its queue store just now), a dropped connection. Come back with the same token.
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
  // true or false once the concert list says whether this concert exists; null if it could not
  const known = api("GET", "/api/v1/concerts").then((all) => {
    const c = all.find((x) => x.id === concertId);
    if (c) {
      concertName = c.name;
      text($("#title"), "Waiting room: " + c.name);
      if (!finished && position === null) document.title = c.name + " — waiting room";
    }
    return !!c;
  }, () => null);
  let deliberate = false;
  try { deliberate = sessionStorage.getItem(JOIN_KEY) === "1"; sessionStorage.removeItem(JOIN_KEY); } catch { /* private mode */ }
  // Someone who bought here sees their tickets: a new place in line only when asked for.
  const bought = () => !deliberate && receipts(concertId).length > 0;
  try {
    if (!t) {
      if (bought()) { ended("completed"); return; }
      if (await known === false) { ended("missing"); return; }
      if (!await join()) return;
    } else {
      try {
        apply(await api("GET", "/api/v1/queue", { token: t.token }));
      } catch (e) {
        if (e.code !== "token_invalid") throw e;
        dropTicket(concertId);
        t = null;
        if (bought()) { ended("completed"); return; }
        if (!await join()) return;
      }
    }
  } catch (e) {
    if (e.code === "signed_out") { ended("signed_out"); return; }
    if (e.code === "not_found") { ended("missing"); return; }
    if (!t) {
      text($("#status"), "Could not reach the server to join the queue; trying again…");
      setTimeout(start, 3000);
      return;
    }
    // The server is unreachable or busy: the socket's retries take it from here.
  }
  if (!t || finished) return;
  connect();
  import("./prepare.js").then((m) => {
    if (finished) return;
    extras = m;
    m.start({ concertId, token: t.token });
  }).catch(() => { /* the extras are extras: waiting works without them */ });
}

// Leaving asks first, in the page's own dialog.
const dialog = $("#leave-dialog");
$("#leave").addEventListener("click", () => {
  if (!t || finished) return;
  if (tooSoon()) { text($("#status"), tryAgainIn(tooSoon())); return; }
  dialog.returnValue = "";
  dialog.showModal();
});
dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "leave" || finished) { $("#leave").focus(); return; }
  try {
    await api("DELETE", "/api/v1/queue", { token: t.token });
    ended("left");
    $("#again").focus();
  } catch (e) {
    text($("#status"), e.code === "rate_limited" ? tryAgainIn(e.retryAfter)
      : "Could not leave the queue just now: " + e.message);
    $("#leave").focus();
  }
});
$("#again").addEventListener("click", () => {
  dropTicket(concertId);
  try { sessionStorage.setItem(JOIN_KEY, "1"); } catch { /* private mode: a plain reload */ }
  location.reload();
});
addEventListener("online", () => { if (!finished && !ws) { failures = 0; connect(); } });
addEventListener("offline", () => { if (!finished) setConn("reconnecting"); });
// A page brought back from the back-forward cache shows the ticket as it is now.
addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
// How long a closed page keeps its place, and how long a turn lasts, are the server's to say.
limits().then((l) => {
  if (!l) return;
  text($("#grace"), roughly(l.wait_grace_seconds));
  text($("#window"), minutes(l.active_ttl_seconds));
});

start();

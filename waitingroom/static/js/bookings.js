// "My bookings": the user's reservations, newest first, and refunds of paid ones.
//
// Every API call acts as the user that a live queue token (WAITING or AVAILABLE, any concert)
// belongs to. A payment uses up its token, so after buying the page often has none. It gets one
// this way, and says so when it had to join a queue:
//   1. a queue ticket this browser keeps for any concert (tried in turn, newest purchase's
//      concert first): no new place is taken anywhere;
//   2. else it joins a queue with the stored sign-in: the queue of the concert of the newest
//      receipt kept here, else the first concert listed. That takes a place in that queue (kept
//      as that concert's ticket, so the waiting page goes on with it; it lapses by itself if
//      nobody waits on it).
// A token that dies while the page is open (a waiting place lapses) is replaced the same way,
// and the call made again: refunds carry the same Idempotency-Key, so that is always safe.
import {
  $, ApiError, api, localTime, money, saveTicket, store, text, ticket, tooSoon, tryAgainIn, userId,
  uuid,
} from "./common.js";
import { identity, joinQueue } from "./identity.js";

const rows = new Map(); // reservation id → {r, li}
const names = new Map(); // concert id → name
const dates = new Map(); // schedule id → the date in words
const dead = new Set(); // tokens found expired or unknown
let current = null; // {concertId, token}: the live token in use
let concertsAsked = null;
let refunding = null; // the reservation whose refund the dialog is about
let busy = false; // a refund request is on its way
let opener = null; // the button that opened the dialog

const NETWORK = "The server could not be reached. Check your connection and try again.";
const KEY = (paymentId) => "refund." + paymentId;


// -- messages ----------------------------------------------------------------------------
function notice(box, message, kind) {
  box.replaceChildren();
  if (!message) return null;
  const p = document.createElement("p");
  p.className = "notice " + kind;
  p.textContent = message;
  box.append(p);
  return p;
}
const alertBox = (message, kind = "bad") => notice($("#alert"), message, kind);
const tell = (message) => notice($("#message"), message, "ok");
const dialogAlert = (message, kind = "bad") => notice($("#confirm-alert"), message, kind);

function plain(e) {
  switch (e.code) {
    case "network": return NETWORK;
    case "service_unavailable": case "server": return "The service is busy right now. Try again in a moment.";
    case "rate_limited": return tryAgainIn(e.retryAfter);
    default: return e.message;
  }
}

// -- words -------------------------------------------------------------------------------
const seatNumbers = (r) => r.seats.map((s) => s.seat_number).sort((a, b) => a - b);

function seatWords(r) {
  const s = seatNumbers(r);
  return s.length === 1 ? "seat " + s[0] : "seats " + s.slice(0, -1).join(", ") + " and " + s.at(-1);
}

const concertName = (id) => names.get(id) || `Concert ${id}`;

function dateWords(isoDate) {
  return new Date(isoDate + "T00:00:00").toLocaleDateString(undefined,
    { weekday: "short", year: "numeric", month: "short", day: "numeric" });
}

/** [badge text, badge kind, a sentence about it] for a reservation. */
function standing(r) {
  if (r.status === "RESERVED") {
    return r.closed ? ["Paid", "paid", "Refunds for this booking have closed (they end on the concert date)."]
      : ["Paid", "paid", ""];
  }
  if (r.status === "CANCELED" && r.payment_id) {
    return ["Refunded", "refunded", `${money(r.total_price)} went back to your balance.`];
  }
  if (r.status === "CANCELED") return ["Released", "off", "You let these seats go before paying. Nothing was charged."];
  if (r.status === "EXPIRED") return ["Hold ran out", "off", "The hold ran out before it was paid. Nothing was charged."];
  return ["Held, not paid", "held",
    `Held for you until ${localTime(r.hold_expires_at)}. Pay for it on the booking page before then.`];
}

// -- a live token --------------------------------------------------------------------------
const isDead = (e) => ["token_expired", "token_invalid", "token_missing"].includes(e.code);

function concerts() {
  return (concertsAsked ||= api("GET", "/api/v1/concerts").then((list) => {
    for (const c of list) names.set(c.id, c.name);
    return list;
  }));
}

/** The receipts this browser keeps after payments ({concertId, payment, date}), newest first. */
function receipts() {
  const out = [];
  for (const k of Object.keys(localStorage)) {
    const m = /^wr\.receipt\.(\d+)$/.exec(k);
    const r = m && store.get(k.slice(3));
    if (r && r.payment) out.push({ concertId: Number(m[1]), payment: r.payment, date: r.date });
  }
  return out.sort((a, b) => b.payment - a.payment);
}

/** The queue tickets kept here ({concertId, token}), the newest purchase's concert first. */
function tickets() {
  const order = receipts().map((r) => r.concertId);
  const out = [];
  for (const k of Object.keys(localStorage)) {
    const m = /^wr\.ticket\.(\d+)$/.exec(k);
    const t = m && ticket(Number(m[1]));
    if (t && t.token && !dead.has(t.token)) out.push({ concertId: Number(m[1]), token: t.token });
  }
  const rank = (c) => (order.includes(c) ? order.indexOf(c) : order.length);
  return out.sort((a, b) => rank(a.concertId) - rank(b.concertId));
}

/** Join a queue to get a live token: the newest purchase's concert's, else the first listed. */
async function joinSomewhere() {
  let concertId = receipts()[0]?.concertId;
  if (concertId === undefined) {
    const list = await concerts();
    if (!list.length) {
      throw new ApiError(0, { code: "no_concert",
        detail: "No concert is on sale right now, and the gateway looks up bookings through a place in a concert's queue." });
    }
    concertId = list[0].id;
  }
  const t = await joinQueue(concertId);
  const old = ticket(concertId);
  saveTicket(concertId, {
    token: t.token, expires_at: t.expires_at, first: old && old.token === t.token ? old.first : t.position,
  });
  showJoined(concertId);
  return { concertId, token: t.token };
}

async function showJoined(concertId) {
  const box = $("#joined");
  await concerts().catch(() => null);
  box.replaceChildren(
    "To look up your bookings the gateway needs a live place in one of its queues, and this browser "
    + `had none, so this page joined the queue for ${concertName(concertId)}. `
    + "If you do not want that place, do nothing: it lapses by itself. ");
  const a = document.createElement("a");
  a.href = "/queue/" + concertId;
  a.textContent = "Go to that queue";
  box.append(a);
  box.hidden = false;
}

/**
 * `call(token)` with a live token of the user: the one in use, else a kept ticket, else one from
 * joining a queue. A token that turns out dead is set aside and the next one tried.
 */
async function withToken(call) {
  for (let joins = 0; ;) {
    if (!current) {
      current = tickets()[0] || null;
      if (!current) {
        if (joins++ > 1) throw new ApiError(0, { code: "server", detail: "No live queue place could be had." });
        current = await joinSomewhere();
      }
    }
    try {
      return await call(current.token);
    } catch (e) {
      if (!isDead(e)) throw e;
      dead.add(current.token);
      current = null;
    }
  }
}

// -- the list ----------------------------------------------------------------------------
function row(r) {
  let entry = rows.get(r.id);
  if (!entry) {
    const li = document.createElement("li");
    li.className = "card booking";
    li.innerHTML = `<div class="bk-head"><h2 tabindex="-1"></h2><span class="bk-badge"></span></div>
      <dl class="figures">
        <dt class="bk-when">Date</dt><dd class="bk-when"></dd>
        <dt>Seats</dt><dd class="bk-seats"></dd>
        <dt>Total</dt><dd class="bk-total"></dd>
        <dt>Booking</dt><dd class="bk-ref"></dd>
      </dl>
      <p class="bk-note muted"></p>
      <a class="bk-pay" href="#">Go to the booking page</a>
      <button type="button" class="secondary bk-refund">Refund</button>`;
    li.querySelector(".bk-refund").addEventListener("click", (ev) => ask(rows.get(r.id).r, ev.currentTarget));
    entry = { r, li };
    rows.set(r.id, entry);
  }
  entry.r = { ...r, closed: r.closed || (entry.r.closed && r.status === "RESERVED") };
  paint(entry);
  return entry.li;
}

function paint({ r, li }) {
  const [badge, kind, note] = standing(r);
  const name = concertName(r.concert_id);
  text(li.querySelector("h2"), name);
  const b = li.querySelector(".bk-badge");
  text(b, badge);
  b.className = "bk-badge bk-" + kind;
  const date = dates.get(r.schedule_id) || "";
  for (const el of li.querySelectorAll(".bk-when")) el.hidden = !date;
  text(li.querySelector("dd.bk-when"), date);
  text(li.querySelector(".bk-seats"), seatNumbers(r).join(", "));
  text(li.querySelector(".bk-total"), money(r.total_price));
  text(li.querySelector(".bk-ref"), `#${r.id}` + (r.payment_id ? ` · payment #${r.payment_id}` : ""));
  const p = li.querySelector(".bk-note");
  text(p, note);
  p.hidden = !note;
  const pay = li.querySelector(".bk-pay");
  pay.hidden = r.status !== "WAITING";
  pay.href = "/book/" + r.concert_id;
  const refund = li.querySelector(".bk-refund");
  refund.hidden = !(r.status === "RESERVED" && r.payment_id && !r.closed);
  refund.setAttribute("aria-label", `Refund ${name}, ${seatWords(r)}, ${money(r.total_price)}`);
}

function render(list) {
  const ul = $("#list");
  const seen = new Set();
  list.forEach((r, i) => {
    const li = row(r);
    seen.add(r.id);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  for (const [id, { li }] of rows) if (!seen.has(id)) { li.remove(); rows.delete(id); }
  $("#empty").hidden = list.length > 0;
  $("#summary a").hidden = !list.length; // the empty state links to the concerts itself
}

/** The dates of the bookings: from the concerts' previews where a live ticket of that concert is
 * at hand, else from the receipts kept here. Best effort: a booking may show without its date. */
async function fillDates(list) {
  for (const k of receipts()) {
    const r = list.find((x) => x.payment_id === k.payment);
    if (r && k.date && !dates.has(r.schedule_id)) dates.set(r.schedule_id, k.date);
  }
  const wanted = new Set(list.filter((r) => !dates.has(r.schedule_id)).map((r) => r.concert_id));
  await Promise.all([...wanted].map(async (concertId) => {
    const token = current && current.concertId === concertId ? current.token : ticket(concertId)?.token;
    if (!token || dead.has(token)) return;
    try {
      const days = await api("GET", `/api/v1/concerts/${concertId}/preview`, { token });
      for (const d of days) dates.set(d.id, dateWords(d.concert_date));
    } catch { /* no date, then */ }
  }));
  for (const entry of rows.values()) paint(entry);
}

function showBalance(b) {
  text($("#balance"), money(b));
  $("#summary").hidden = false;
}

async function loadBalance() {
  try {
    showBalance((await withToken((token) => api("GET", "/api/v1/balance", { token }))).balance);
  } catch { /* the list matters more; the balance shows after a refund */ }
}

function signedOut(body, title = "Sign in to see your bookings") {
  $("#loading").hidden = true;
  $("#list").replaceChildren();
  rows.clear();
  for (const id of ["#summary", "#empty", "#joined", "#failed"]) $(id).hidden = true;
  text($("#signed-out-title"), title);
  text($("#signed-out-text"), body);
  $("#signed-out").hidden = false;
}

const NOT_SIGNED_IN = "You are not signed in on this browser. Sign in on the concerts page (or follow the "
  + "link from the site that sells the tickets), then come back here.";

/** Load (or reload) the list; true when it was shown. */
async function load() {
  $("#failed").hidden = true;
  if (!identity() && !userId() && !tickets().length) { signedOut(NOT_SIGNED_IN); return false; }
  let list;
  try {
    await concerts().catch(() => null); // names can wait: the bookings cannot
    list = await withToken((token) => api("GET", "/api/v1/reservations", { token }));
  } catch (e) {
    $("#loading").hidden = true;
    if (e.code === "signed_out") signedOut(identity() || userId() ? e.message : NOT_SIGNED_IN);
    else if (e.code === "no_concert") signedOut(e.message, "Your bookings cannot be looked up right now");
    else {
      text($("#failed-text"), plain(e));
      $("#failed").hidden = false;
    }
    return false;
  }
  $("#loading").hidden = true;
  render(list);
  await Promise.all([fillDates(list), loadBalance()]);
  return true;
}

// -- refunds -----------------------------------------------------------------------------
const dialog = $("#confirm");

function ask(r, button) {
  if (busy) return;
  refunding = r;
  opener = button;
  dialogAlert("");
  text($("#confirm-status"), "");
  const when = dates.get(r.schedule_id);
  text($("#confirm-text"), `${concertName(r.concert_id)}${when ? ", " + when : ""}: ${seatWords(r)}. `
    + `${money(r.total_price)} goes back to your balance and the seats go back on sale for others. `
    + "This cannot be undone.");
  text($("#confirm-yes"), `Refund ${money(r.total_price)}`);
  $("#confirm-yes").removeAttribute("aria-disabled");
  dialog.showModal();
  $("#confirm-no").focus(); // the harmless choice first
}

function closeDialog() {
  if (dialog.open) dialog.close();
}

dialog.addEventListener("cancel", (ev) => { if (busy) ev.preventDefault(); });
dialog.addEventListener("close", () => {
  if (dialog.open) return; // the event comes a moment late: the dialog was opened again since
  const back = opener && opener.isConnected && !opener.hidden ? opener : null;
  opener = null;
  refunding = null;
  if (back) back.focus();
});
$("#confirm-no").addEventListener("click", () => { if (!busy) closeDialog(); });
$("#confirm-yes").addEventListener("click", () => refund());

/** After a refund is answered for good: the booking as it now stands, the message, focus on it. */
function settled(r, patch, message, kind = "ok") {
  const entry = rows.get(r.id);
  if (entry) { Object.assign(entry.r, patch); paint(entry); }
  opener = null;
  closeDialog();
  if (kind === "ok") { alertBox(""); tell(message); } else { tell(""); alertBox(message, kind); }
  entry?.li.querySelector("h2").focus();
}

async function refund(tries = 0) {
  const r = refunding;
  if (!r || busy) return;
  const wait = tooSoon();
  if (wait) { dialogAlert(tryAgainIn(wait), "warn"); return; }
  // One key per refund, kept (across retries and reloads) until it is answered for good: pressing
  // again, after a lost answer say, asks about the same refund and can never refund twice.
  let key = store.get(KEY(r.payment_id));
  if (!key) { key = uuid(); store.set(KEY(r.payment_id), key); }
  busy = true;
  const yes = $("#confirm-yes");
  yes.setAttribute("aria-disabled", "true"); // not `disabled`: that would take the focus away
  dialogAlert("");
  text($("#confirm-status"), "Refunding…");
  try {
    const done = await withToken((token) => api("POST", `/api/v1/payments/${r.payment_id}/refund`,
      { token, headers: { "Idempotency-Key": key } }));
    store.drop(KEY(r.payment_id));
    showBalance(done.balance);
    busy = false;
    settled(r, { status: "CANCELED" }, `Refunded ${money(done.amount)} for ${concertName(r.concert_id)}, ${seatWords(r)}. `
      + `Your balance is now ${money(done.balance)}.`);
    load(); // the server's word on everything else
    return;
  } catch (e) {
    busy = false;
    yes.removeAttribute("aria-disabled");
    text($("#confirm-status"), "");
    switch (e.code) {
      case "already_refunded":
        store.drop(KEY(r.payment_id));
        settled(r, { status: "CANCELED" }, "This booking had already been refunded (in another tab or window, perhaps). "
          + "Nothing more was refunded.", "warn");
        load();
        break;
      case "refund_closed":
        store.drop(KEY(r.payment_id));
        settled(r, { closed: true }, "This booking can no longer be refunded: refunds close on the concert date. "
          + "Nothing was refunded.", "bad");
        break;
      case "payment_not_found":
        store.drop(KEY(r.payment_id));
        settled(r, {}, "That payment could not be found on your account, so nothing was refunded. "
          + "The list has been loaded again.", "bad");
        load();
        break;
      case "signed_out":
        opener = null;
        closeDialog();
        signedOut(e.message);
        break;
      case "no_concert":
        dialogAlert(e.message);
        break;
      case "idempotency_in_progress":
        if (tries < 5) {
          text($("#confirm-status"), "Your refund is still going through…");
          setTimeout(() => refund(tries + 1), 1000);
        } else {
          dialogAlert("Your refund is still going through. Press Refund again in a moment: "
            + "it will not be refunded twice.", "warn");
        }
        break;
      case "idempotency_key_reused":
        store.drop(KEY(r.payment_id));
        dialogAlert("That refund attempt could not be matched. Press Refund again.");
        break;
      case "rate_limited":
        dialogAlert(tryAgainIn(e.retryAfter), "warn");
        break;
      case "network":
        text(yes, "Try the refund again");
        dialogAlert("The server could not be reached, so it is not known whether the refund went through. "
          + "Check your connection and press the button again: it is safe, you cannot be refunded twice.");
        break;
      default:
        text(yes, "Try the refund again");
        dialogAlert("Could not refund. " + plain(e) + " Pressing the button again is safe: "
          + "you cannot be refunded twice.");
    }
  }
}

// -- start -------------------------------------------------------------------------------
$("#retry").addEventListener("click", () => { $("#loading").hidden = false; load(); });
if (userId()) text($("#who"), "User " + userId());
load();

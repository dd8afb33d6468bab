// The booking page: dates, a seat map, holds with a countdown, balance, payment, confirmation.
// This module wires the parts: the seat map (seatmap.js), the sale (checkout.js), the page's state
// (book-state.js) and its messages (book-ui.js); it loads the dates, refreshes the map, and starts.
import {
  $, ApiError, api, clock, dropTicket, everySecond, limits, localTime, priceRange, saveTicket, secondsLeft, shortMoney, store,
  text, userId,
} from "./common.js";
import { state } from "./book-state.js";
import { alertBox, blocked, dateOf, plain, say, tokenTrouble } from "./book-ui.js";
import { checkout } from "./checkout.js";
import { receipts } from "./receipt.js";
import { seatMap } from "./seatmap.js";
import { bigMap, RANGE } from "./bigmap.js";

const SEATS_POLL_MS = 5000;
const PROBE = 16; // seats per request while looking for a big date's last seat

const picking = {
  canPick() {
    if (!state.hold) return true;
    alertBox("You are holding seats already: pay for them or release them to choose others.", "warn");
    return false;
  },
  onRefused: (n, why) => say(`Seat ${n} is ${why}.`),
  onPick: () => sale.showPicked(),
};
// A date whose first RANGE seats fill the first range is big: shown by bigmap.js, in ranges. Any
// other is small, shown whole by seatmap.js and fetched whole.
const small = seatMap($("#seats"), picking);
const big = bigMap($("#seats"), {
  ...picking,
  fetchRange: (first, last, etag) => seatRange(state.scheduleId, first, last, etag),
  onError: (e) => tokenTrouble(e),
  onSeats: (list) => showPrices(list, true),
});
let shown = null; // the date whose first range is in: its map is small or big from then on
const map = {
  picked: () => (big.on ? big : small).picked(),
  unpick(numbers) { small.unpick(numbers); big.unpick(numbers); },
  setMine(numbers) { small.setMine(numbers); big.setMine(numbers); },
  clear() { big.clear(); small.clear(); shown = null; priceSpan = null; },
};
const sale = checkout({ map, refreshSeats });
const limitsUsed = limits().then(sale.useLimits); // asked now, needed when the shop opens

// -- dates and the seat map --------------------------------------------------------------
async function loadSchedules() {
  state.schedules = await api("GET", `/api/v1/concerts/${state.concertId}/schedules`, { token: state.ticket.token });
  const box = $("#dates");
  box.replaceChildren();
  for (const s of state.schedules) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.id = s.id;
    b.addEventListener("click", () => chooseSchedule(s.id));
    box.append(b);
  }
  $("#no-dates").hidden = state.schedules.length > 0;
  // The held date, else the one on show, else the one chosen while waiting.
  const keep = state.hold ? state.hold.schedule_id : state.scheduleId ?? (state.plan && state.plan.schedule_id);
  if (state.schedules.length) {
    await chooseSchedule(state.schedules.some((s) => s.id === keep) ? keep : state.schedules[0].id);
  }
}

function showDates() {
  for (const b of $("#dates").children) {
    const s = state.schedules.find((x) => x.id === Number(b.dataset.id));
    text(b, `${dateOf(s.id)} · ${s.available_seats} left`);
    b.setAttribute("aria-pressed", String(s.id === state.scheduleId));
  }
}

async function chooseSchedule(id) {
  if (id !== state.scheduleId) {
    state.scheduleId = id;
    map.clear();
    sale.showMine();
  }
  showDates();
  await refreshSeats();
}

async function refreshSeats() {
  clearTimeout(state.seatsTimer);
  if (state.closed || state.scheduleId === null) return;
  const id = state.scheduleId;
  const asked = ++state.seatsAsked;
  try {
    if (shown === id && big.on) {
      await big.refresh();
      if (asked !== state.seatsAsked || id !== state.scheduleId || state.closed) return;
      sale.showPicked();
      return later(asked);
    }
    // The first answer of a date is its first range; a small date's later ones are all of it.
    const first = shown === id ? null : await seatRange(id, 1, RANGE, null);
    const list = first ? first.list : await api("GET", `/api/v1/schedules/${id}/seats`, { token: state.ticket.token });
    // A slower, older answer must not paint over a newer one.
    if (asked !== state.seatsAsked || id !== state.scheduleId || state.closed) return;
    shown = id;
    if (first && list.length >= RANGE) {
      big.open(RANGE, first);
      showPrices(list);
      sale.showMine();
      sale.showPicked();
      findLast(id, list);
      return later(asked);
    }
    small.render(list);
    showPrices(list);
    const sched = state.schedules.find((x) => x.id === id);
    if (sched) {
      sched.available_seats = list.filter((s) => s.status === "AVAILABLE").length;
      showDates();
    }
    sale.showPicked();
  } catch (e) {
    if (tokenTrouble(e)) return;
  }
  later(asked);
}

/** One chain of refreshes: only the newest call schedules the next. */
function later(asked) {
  if (asked === state.seatsAsked && document.visibilityState === "visible") {
    state.seatsTimer = setTimeout(refreshSeats, SEATS_POLL_MS);
  }
}

/**
 * Seats first..last of a date: {list, etag}, or null when `etag` is still theirs (304). Not
 * patient: a busy server's range is asked again on the next refresh or scroll.
 */
async function seatRange(id, first, last, etag) {
  const headers = { Authorization: "Bearer " + state.ticket.token };
  if (etag) headers["If-None-Match"] = etag;
  let resp;
  try {
    resp = await fetch(`/api/v1/schedules/${id}/seats?from=${first}&to=${last}`, { headers, cache: "no-store" });
  } catch {
    throw new ApiError(0, { code: "network", detail: "The server could not be reached." });
  }
  if (resp.status === 304) return null;
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, data || { code: resp.status >= 500 ? "server" : "unknown" });
  return { list: data, etag: resp.headers.get("ETag") };
}

/**
 * A big date's last seat, found with small ranges (seat numbers run from 1 with no gap of PROBE
 * or more): doubling from the first range, then halving; the map grows to it.
 */
async function findLast(id, firstList) {
  const top = (list) => list[list.length - 1].seat_number;
  const has = async (n) => {
    const got = await seatRange(id, n, n + PROBE - 1, null);
    return got.list.length ? top(got.list) : 0;
  };
  try {
    let lo = top(firstList), hi = 0; // a seat at lo; none from hi on
    while (!hi) {
      const t = await has(lo * 2);
      if (id !== state.scheduleId) return;
      if (t) lo = t; else hi = lo * 2;
    }
    while (hi - lo > PROBE) {
      const mid = Math.floor((lo + hi) / 2);
      const t = await has(mid);
      if (id !== state.scheduleId) return;
      if (t) lo = t; else hi = mid;
    }
    const t = await has(lo);
    if (id !== state.scheduleId || shown !== id) return;
    big.open(Math.max(lo, t));
  } catch (e) {
    tokenTrouble(e);
  }
}

/** The prices of the date, before anything is held (`more`: of more seats of the same date). */
let priceSpan = null;
function showPrices(list, more = false) {
  const prices = list.map((s) => s.price);
  if (!prices.length) return;
  let lo = Math.min(...prices), hi = Math.max(...prices);
  if (more && priceSpan) { lo = Math.min(lo, priceSpan[0]); hi = Math.max(hi, priceSpan[1]); }
  priceSpan = [lo, hi];
  text($(".price-sample"), shortMoney(lo));
  text($("#prices"), lo === hi ? `Every seat on this date costs ${priceRange(lo, hi)}.`
    : `Seats on this date cost ${priceRange(lo, hi)} each; every available seat shows its price.`);
}

/** What was chosen while waiting, said once the dates are known. */
function showPlan() {
  const p = state.plan;
  if (!p || state.hold) return;
  const n = Number($("#best-n").value);
  const on = p.schedule_id === state.scheduleId ? " on " + dateOf(p.schedule_id) : "";
  text($("#plan-hint"), `You planned ${n} seat${n > 1 ? "s" : ""}${on}: pick them on the map, or let us pick the best ${n} for you.`);
  $("#plan-hint").hidden = false;
}

// -- start -------------------------------------------------------------------------------
async function start() {
  const { concertId } = state;
  const user = userId();
  if (user) text($("#who"), "User " + user);
  const bought = receipts(concertId).length > 0;
  let known = null; // whether the concert exists; null when the list could not be had
  try {
    const all = await api("GET", "/api/v1/concerts");
    const c = all.find((x) => x.id === concertId);
    known = !!c;
    if (c) { state.concertName = c.name; text($("#title"), "Choose your seats: " + c.name); }
  } catch { /* the title can wait */ }
  const t = state.ticket;
  if (!t) {
    if (bought) sale.showReceipt();
    else if (known === false) notFound();
    else blocked("Queue first", "To book seats, join this concert's queue and wait for your turn.", "Join the queue");
    return;
  }
  let s;
  try {
    s = await api("GET", "/api/v1/queue", { token: t.token });
  } catch (e) {
    if (!tokenTrouble(e)) blocked("Could not reach the server", plain(e) + " Reload the page to try again.");
    return;
  }
  if (s.state === "WAITING") { location.replace("/queue/" + concertId); return; }
  if (s.state === "EXPIRED") {
    if (s.reason === "completed" && bought) { sale.showReceipt(); return; }
    dropTicket(concertId);
    blocked("Your booking time is over", s.reason === "completed"
      ? "This ticket has been used for a payment already."
      : "The time to book after the queue ran out. Join the queue again to try once more.");
    return;
  }
  t.expires_at = s.expires_at;
  saveTicket(concertId, t);
  await limitsUsed;
  $("#shop").hidden = false;
  text($("#window-until"), localTime(s.expires_at));
  state.stopWindow = everySecond(() => {
    const left = clock(s.expires_at);
    text($("#window-left"), left);
    document.title = `${left} left — ${state.concertName || "Choose your seats"}`;
    if (secondsLeft(s.expires_at) <= 0) tokenTrouble({ code: "token_expired" });
  });
  if (state.hold) {
    try {
      const r = await api("GET", `/api/v1/reservations/${state.hold.id}`, { token: t.token });
      if (r.status === "WAITING" && secondsLeft(r.hold_expires_at) > 0) sale.showHold(r); else sale.dropHold();
    } catch (e) {
      if (tokenTrouble(e)) return;
      sale.dropHold();
    }
  }
  await Promise.all([sale.loadBalance(), loadSchedules().then(showPlan, (e) => {
    if (!tokenTrouble(e)) alertBox("Could not load the dates. " + plain(e));
  })]);
}

function notFound() {
  blocked("We can't find that concert",
    "There is no concert at this address: it may have been taken off sale, or the link may be mistyped.", null);
  text($("#title"), "Concert not found");
}

/** A deliberate new place in line (the waiting page would otherwise show what was bought). */
function requeue() {
  dropTicket(state.concertId);
  store.drop("hold." + state.concertId);
  try { sessionStorage.setItem("wr.join." + state.concertId, "1"); } catch { /* private mode */ }
  location.assign("/queue/" + state.concertId);
}

$("#requeue").addEventListener("click", requeue);
$("#more").addEventListener("click", requeue);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !state.closed) refreshSeats();
});
// A page brought back from the back-forward cache shows the booking as it is now.
addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });

start();

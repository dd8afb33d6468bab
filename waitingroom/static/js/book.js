// The booking page: dates, a seat map, holds with a countdown, balance, payment, confirmation.
// This module wires the parts: the seat map (seatmap.js), the sale (checkout.js), the page's state
// (book-state.js) and its messages (book-ui.js); it loads the dates, refreshes the map, and starts.
import {
  $, api, clock, dropTicket, everySecond, limits, localTime, saveTicket, secondsLeft, store, text, userId,
} from "./common.js";
import { state } from "./book-state.js";
import { alertBox, blocked, dateOf, plain, say, tokenTrouble } from "./book-ui.js";
import { checkout } from "./checkout.js";
import { seatMap } from "./seatmap.js";

const SEATS_POLL_MS = 5000;

const map = seatMap($("#seats"), {
  canPick() {
    if (!state.hold) return true;
    alertBox("You are holding seats already: pay for them or release them to choose others.", "warn");
    return false;
  },
  onRefused: (n, why) => say(`Seat ${n} is ${why}.`),
  onPick: () => sale.showPicked(),
});
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
  const keep = state.hold ? state.hold.schedule_id : state.scheduleId;
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
    const list = await api("GET", `/api/v1/schedules/${id}/seats`, { token: state.ticket.token });
    // A slower, older answer must not paint over a newer one.
    if (asked !== state.seatsAsked || id !== state.scheduleId || state.closed) return;
    map.render(list);
    const sched = state.schedules.find((x) => x.id === id);
    if (sched) {
      sched.available_seats = list.filter((s) => s.status === "AVAILABLE").length;
      showDates();
    }
    sale.showPicked();
  } catch (e) {
    if (tokenTrouble(e)) return;
  }
  // One chain of refreshes: only the newest call schedules the next.
  if (asked === state.seatsAsked && document.visibilityState === "visible") {
    state.seatsTimer = setTimeout(refreshSeats, SEATS_POLL_MS);
  }
}

// -- start -------------------------------------------------------------------------------
async function start() {
  const { concertId } = state;
  const user = userId();
  if (user) text($("#who"), "User " + user);
  const receipt = store.get("receipt." + concertId);
  try {
    const all = await api("GET", "/api/v1/concerts");
    const c = all.find((x) => x.id === concertId);
    if (c) { state.concertName = c.name; text($("#title"), "Choose your seats: " + c.name); }
  } catch { /* the title can wait */ }
  const t = state.ticket;
  if (!t) {
    if (receipt) sale.showReceipt(receipt);
    else blocked("Queue first", "To book seats, join this concert's queue and wait for your turn.");
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
    if (s.reason === "completed" && receipt) { sale.showReceipt(receipt); return; }
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
    text($("#window-left"), clock(s.expires_at));
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
  await Promise.all([sale.loadBalance(), loadSchedules().catch((e) => {
    if (!tokenTrouble(e)) alertBox("Could not load the dates. " + plain(e));
  })]);
}

$("#requeue").addEventListener("click", () => {
  dropTicket(state.concertId);
  store.drop("hold." + state.concertId);
  location.assign("/queue/" + state.concertId);
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !state.closed) refreshSeats();
});

start();

// The booking page: dates, a seat map, holds with a countdown, balance, payment, confirmation.
import {
  $, api, clock, dropTicket, everySecond, localTime, money, pathId, saveTicket, secondsLeft, store, text,
  ticket, userId,
} from "./common.js";

const concertId = pathId();
const SEATS_POLL_MS = 5000;
const LABEL = { AVAILABLE: "free", PENDING: "held", RESERVED: "sold", MINE: "yours", PICKED: "✓ picked" };
const SPOKEN = { AVAILABLE: "free", PENDING: "held by someone", RESERVED: "sold", MINE: "held for you" };

let t = ticket(concertId);
let concertName = "";
let schedules = [], scheduleId = null;
const seats = new Map(); // seat number → {el, status, price}
const picked = new Set();
let hold = store.get("hold." + concertId); // the reservation, plus its payment's Idempotency-Key
let balance = null, seatsTimer = 0, seatsAsked = 0, stopWindow = null, stopHold = null, closed = false;

// -- messages ----------------------------------------------------------------------------
function alertBox(message, kind = "bad") {
  const box = $("#alert");
  box.replaceChildren();
  if (!message) return;
  const p = document.createElement("p");
  p.className = "notice " + kind;
  p.textContent = message;
  box.append(p);
}
const say = (message) => text($("#status"), message);

function seatList(numbers) {
  const s = [...numbers].sort((a, b) => a - b);
  return s.length === 1 ? "seat " + s[0] : "seats " + s.slice(0, -1).join(", ") + " and " + s.at(-1);
}

/** Stop everything and explain why this ticket can book no more. */
function blocked(title, body) {
  closed = true;
  clearTimeout(seatsTimer);
  if (stopWindow) stopWindow();
  if (stopHold) stopHold();
  $("#shop").hidden = true;
  $("#blocked").hidden = false;
  text($("#blocked-title"), title);
  text($("#blocked-text"), body);
  alertBox("");
  say(title);
}

/** Token problems end the visit; true when the error was one. */
function tokenTrouble(e) {
  switch (e.code) {
    case "token_not_admitted":
      location.replace("/queue/" + concertId);
      return true;
    case "token_expired":
      blocked("Your booking time is over",
        "The time to book after the queue ran out, so your seats went back on sale. Join the queue again to try once more.");
      return true;
    case "token_invalid": case "token_missing": case "token_wrong_concert":
      blocked("Your queue ticket is not valid here",
        "We could not find a ticket for this concert. Join the queue to get one.");
      return true;
    default:
      return false;
  }
}

function plain(e) {
  switch (e.code) {
    case "network": return "The server could not be reached. Check your connection and try again.";
    case "service_unavailable": case "server": return "The service is busy right now. Try again in a moment.";
    case "validation_error": return "Something in that request was not right: " + e.message;
    default: return e.message;
  }
}

// -- balance -----------------------------------------------------------------------------
function showBalance(b) {
  balance = b;
  text($("#balance"), money(b));
}

async function loadBalance() {
  try { showBalance((await api("GET", "/api/v1/balance", { token: t.token })).balance); }
  catch (e) { if (!tokenTrouble(e)) alertBox("Could not load your balance. " + plain(e)); }
}

$("#charge").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const amount = Number($("#charge-amount").value);
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > 10_000_000) {
    alertBox("Add a whole number of won from 1 to 10,000,000 at a time.");
    return;
  }
  try {
    showBalance((await api("POST", "/api/v1/balance/charges", { token: t.token, body: { amount } })).balance);
    alertBox(`Added ${money(amount)}. Your balance is now ${money(balance)}.`, "ok");
  } catch (e) {
    if (tokenTrouble(e)) return;
    alertBox(e.code === "validation_error" ? "Add a whole number of won from 1 to 10,000,000 at a time."
      : "Could not add the money. " + plain(e));
  }
});

// -- dates and the seat map --------------------------------------------------------------
async function loadSchedules() {
  schedules = await api("GET", `/api/v1/concerts/${concertId}/schedules`, { token: t.token });
  const box = $("#dates");
  box.replaceChildren();
  for (const s of schedules) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.id = s.id;
    b.addEventListener("click", () => chooseSchedule(s.id));
    box.append(b);
  }
  $("#no-dates").hidden = schedules.length > 0;
  const keep = hold ? hold.schedule_id : scheduleId;
  if (schedules.length) await chooseSchedule(schedules.some((s) => s.id === keep) ? keep : schedules[0].id);
}

function dateOf(id) {
  const s = schedules.find((x) => x.id === id);
  return s ? new Date(s.concert_date + "T00:00:00").toLocaleDateString(undefined,
    { weekday: "short", year: "numeric", month: "short", day: "numeric" }) : "";
}

function showDates() {
  for (const b of $("#dates").children) {
    const s = schedules.find((x) => x.id === Number(b.dataset.id));
    text(b, `${dateOf(s.id)} · ${s.available_seats} left`);
    b.setAttribute("aria-pressed", String(s.id === scheduleId));
  }
}

async function chooseSchedule(id) {
  if (id !== scheduleId) {
    scheduleId = id;
    picked.clear();
    seats.clear();
    $("#seats").replaceChildren();
  }
  showDates();
  await refreshSeats();
}

function seatButton(n) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "seat";
  b.tabIndex = -1;
  b.innerHTML = `<span></span><small></small>`;
  b.firstChild.textContent = n;
  b.addEventListener("click", () => toggle(n));
  return b;
}

function paintSeat(n) {
  const s = seats.get(n);
  const mine = hold && hold.schedule_id === scheduleId && hold.seats.some((x) => x.seat_number === n);
  const status = mine ? "MINE" : s.status;
  const chosen = picked.has(n);
  const cls = "seat " + status;
  if (s.el.className !== cls) s.el.className = cls;
  text(s.el.lastChild, chosen ? LABEL.PICKED : LABEL[status]);
  s.el.setAttribute("aria-pressed", String(chosen));
  s.el.setAttribute("aria-disabled", String(status !== "AVAILABLE"));
  s.el.setAttribute("aria-label", `Seat ${n}, ${money(s.price)}, ${chosen ? "picked" : SPOKEN[status]}`);
}

async function refreshSeats() {
  clearTimeout(seatsTimer);
  if (closed || scheduleId === null) return;
  const id = scheduleId;
  const asked = ++seatsAsked;
  try {
    const list = await api("GET", `/api/v1/schedules/${id}/seats`, { token: t.token });
    // A slower, older answer must not paint over a newer one.
    if (asked !== seatsAsked || id !== scheduleId || closed) return;
    const grid = $("#seats");
    let free = 0;
    for (const s of list) {
      let seat = seats.get(s.seat_number);
      if (!seat) {
        seat = { el: seatButton(s.seat_number) };
        seats.set(s.seat_number, seat);
        grid.append(seat.el);
      }
      seat.status = s.status;
      seat.price = s.price;
      if (s.status !== "AVAILABLE") picked.delete(s.seat_number);
      else free += 1;
      paintSeat(s.seat_number);
    }
    if (!grid.querySelector('[tabindex="0"]') && grid.firstChild) grid.firstChild.tabIndex = 0;
    const sched = schedules.find((x) => x.id === id);
    if (sched) { sched.available_seats = free; showDates(); }
    showPicked();
  } catch (e) {
    if (tokenTrouble(e)) return;
  }
  // One chain of refreshes: only the newest call schedules the next.
  if (asked === seatsAsked && document.visibilityState === "visible") {
    seatsTimer = setTimeout(refreshSeats, SEATS_POLL_MS);
  }
}

function toggle(n) {
  const s = seats.get(n);
  if (hold) {
    alertBox("You are holding seats already: pay for them or release them to choose others.", "warn");
    return;
  }
  if (s.status !== "AVAILABLE") {
    say(`Seat ${n} is ${SPOKEN[s.status]}.`);
    return;
  }
  if (picked.has(n)) picked.delete(n); else picked.add(n);
  paintSeat(n);
  showPicked();
}

function showPicked() {
  const b = $("#hold-picked");
  b.disabled = !picked.size || !!hold;
  text(b, picked.size ? `Hold ${seatList(picked)}` : "Hold the picked seats");
}

// Arrow keys move between seats (one tab stop for the whole map).
$("#seats").addEventListener("keydown", (ev) => {
  const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
  const grid = $("#seats");
  const cols = getComputedStyle(grid).gridTemplateColumns.split(" ").length;
  const step = ev.key === "ArrowUp" ? -cols : ev.key === "ArrowDown" ? cols : moves[ev.key];
  if (step === undefined) return;
  const all = [...grid.children];
  const i = all.indexOf(document.activeElement);
  if (i < 0) return;
  const j = Math.max(0, Math.min(all.length - 1, i + step));
  ev.preventDefault();
  all[i].tabIndex = -1;
  all[j].tabIndex = 0;
  all[j].focus();
});

// -- holds -------------------------------------------------------------------------------
async function takeHold(body) {
  alertBox("");
  try {
    const r = await api("POST", "/api/v1/reservations", { token: t.token, body: { schedule_id: scheduleId, ...body } });
    picked.clear();
    showHold(r);
    $("#hold").scrollIntoView({ block: "nearest", behavior: "smooth" });
    say(`Holding ${seatList(r.seats.map((s) => s.seat_number))} for you.`);
  } catch (e) {
    if (tokenTrouble(e)) return;
    if (e.code === "seat_unavailable") {
      const gone = e.problem.seats || [];
      for (const n of gone) picked.delete(n);
      alertBox(gone.length
        ? `Sorry, ${seatList(gone)} ${gone.length === 1 ? "was" : "were"} just taken by someone else. The map is up to date now: pick again.`
        : "Sorry, not enough seats are left together on this date. The map is up to date now: pick again.");
    } else if (e.code === "seat_limit") {
      alertBox("That is more seats than one person may hold on this date. Pick fewer seats.");
    } else {
      alertBox("Could not hold the seats. " + plain(e));
    }
  }
  await refreshSeats();
}

$("#hold-picked").addEventListener("click", () => takeHold({ seat_numbers: [...picked].sort((a, b) => a - b) }));
$("#best").addEventListener("submit", (ev) => {
  ev.preventDefault();
  takeHold({ quantity: Number($("#best-n").value) });
});

function showHold(r) {
  hold = { ...r, key: hold && hold.id === r.id ? hold.key : null };
  store.set("hold." + concertId, hold);
  $("#hold").hidden = false;
  text($("#hold-seats"), hold.seats.map((s) => s.seat_number).join(", "));
  text($("#hold-date"), dateOf(hold.schedule_id));
  text($("#hold-total"), money(hold.total_price));
  text($("#pay"), `Pay ${money(hold.total_price)}`);
  if (stopHold) stopHold();
  stopHold = everySecond(() => {
    text($("#hold-left"), clock(hold.hold_expires_at));
    if (secondsLeft(hold.hold_expires_at) <= 0) {
      dropHold();
      alertBox("Your hold ran out, so those seats are on sale again. Pick seats again.");
      setTimeout(refreshSeats, 1500); // the deadline is shown rounded down to the second
    }
  });
  for (const n of seats.keys()) paintSeat(n);
  showPicked();
}

function dropHold() {
  if (stopHold) { stopHold(); stopHold = null; }
  hold = null;
  store.drop("hold." + concertId);
  $("#hold").hidden = true;
  for (const n of seats.keys()) paintSeat(n);
  showPicked();
}

$("#release").addEventListener("click", async () => {
  try {
    await api("DELETE", `/api/v1/reservations/${hold.id}`, { token: t.token });
    dropHold();
    alertBox("Released: those seats are on sale again.", "ok");
  } catch (e) {
    if (tokenTrouble(e)) return;
    if (e.code === "not_found" || e.code === "hold_expired") dropHold();
    alertBox("Could not release the seats. " + plain(e));
  }
  await refreshSeats();
});

// -- paying ------------------------------------------------------------------------------
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function pay(tries = 0) {
  alertBox("");
  // One key per payment attempt, kept until it succeeds: a retry can never charge twice.
  if (!hold.key) { hold.key = uuid(); store.set("hold." + concertId, hold); }
  const button = $("#pay");
  button.disabled = true;
  try {
    const p = await api("POST", "/api/v1/payments", {
      token: t.token, body: { reservation_id: hold.id }, headers: { "Idempotency-Key": hold.key },
    });
    showBalance(p.balance);
    const receipt = {
      concert: concertName, date: dateOf(hold.schedule_id), seats: hold.seats.map((s) => s.seat_number),
      amount: p.amount, payment: p.id, balance: p.balance,
    };
    store.set("receipt." + concertId, receipt);
    dropHold();
    dropTicket(concertId);
    showReceipt(receipt);
  } catch (e) {
    button.disabled = false;
    if (tokenTrouble(e)) return;
    switch (e.code) {
      case "insufficient_balance": {
        await loadBalance();
        $("#charge-amount").value = Math.max(1, hold.total_price - (balance ?? 0));
        alertBox(`Your balance (${money(balance ?? 0)}) is less than the ${money(hold.total_price)} total. ` +
          "Add money below, then press Pay again.");
        $("#charge-amount").focus();
        break;
      }
      case "hold_expired":
        dropHold();
        alertBox("Your hold ran out before the payment, so those seats are on sale again. Nothing was charged. Pick seats again.");
        await refreshSeats();
        break;
      case "idempotency_in_progress":
        if (tries < 5) { setTimeout(() => pay(tries + 1), 1000); say("Your payment is still going through…"); }
        else alertBox("Your payment is still going through. Press Pay again in a moment: you will not be charged twice.");
        break;
      case "idempotency_key_reused":
        hold.key = null;
        alertBox("That payment attempt could not be matched. Press Pay again.");
        break;
      case "already_paid":
        alertBox("These seats are already paid for.", "ok");
        break;
      case "not_found":
        dropHold();
        alertBox("That hold no longer exists. Pick seats again.");
        await refreshSeats();
        break;
      default:
        text(button, "Try the payment again");
        alertBox("We could not confirm the payment. " + plain(e) + " Pressing Pay again is safe: you will not be charged twice.");
    }
  }
}

$("#pay").addEventListener("click", () => pay());

function showReceipt(r) {
  closed = true;
  clearTimeout(seatsTimer);
  if (stopWindow) stopWindow();
  $("#shop").hidden = true;
  $("#blocked").hidden = true;
  $("#done").hidden = false;
  const box = $("#receipt");
  box.replaceChildren();
  const line = (label, value) => {
    const p = document.createElement("p");
    p.append(label + " ");
    const b = document.createElement("b");
    b.textContent = value;
    p.append(b);
    box.append(p);
  };
  line("Concert:", r.concert || "your concert");
  line("Date:", r.date);
  line(r.seats.length === 1 ? "Seat:" : "Seats:", r.seats.join(", "));
  line("Paid:", money(r.amount) + ` (payment #${r.payment})`);
  line("Balance left:", money(r.balance));
  text($("#title"), "Booking confirmed");
  say("Booking confirmed: " + seatList(r.seats) + ".");
}

// -- start -------------------------------------------------------------------------------
async function start() {
  const user = userId();
  if (user) text($("#who"), "User " + user);
  const receipt = store.get("receipt." + concertId);
  try {
    const all = await api("GET", "/api/v1/concerts");
    const c = all.find((x) => x.id === concertId);
    if (c) { concertName = c.name; text($("#title"), "Choose your seats: " + c.name); }
  } catch { /* the title can wait */ }
  if (!t) {
    if (receipt) showReceipt(receipt);
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
    if (s.reason === "completed" && receipt) { showReceipt(receipt); return; }
    dropTicket(concertId);
    blocked("Your booking time is over", s.reason === "completed"
      ? "This ticket has been used for a payment already."
      : "The time to book after the queue ran out. Join the queue again to try once more.");
    return;
  }
  t.expires_at = s.expires_at;
  saveTicket(concertId, t);
  $("#shop").hidden = false;
  text($("#window-until"), localTime(s.expires_at));
  stopWindow = everySecond(() => {
    text($("#window-left"), clock(s.expires_at));
    if (secondsLeft(s.expires_at) <= 0) tokenTrouble({ code: "token_expired" });
  });
  if (hold) {
    try {
      const r = await api("GET", `/api/v1/reservations/${hold.id}`, { token: t.token });
      if (r.status === "WAITING" && secondsLeft(r.hold_expires_at) > 0) showHold(r); else dropHold();
    } catch (e) {
      if (tokenTrouble(e)) return;
      dropHold();
    }
  }
  await Promise.all([loadBalance(), loadSchedules().catch((e) => {
    if (!tokenTrouble(e)) alertBox("Could not load the dates. " + plain(e));
  })]);
}

$("#requeue").addEventListener("click", () => {
  dropTicket(concertId);
  store.drop("hold." + concertId);
  location.assign("/queue/" + concertId);
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !closed) refreshSeats();
});

start();

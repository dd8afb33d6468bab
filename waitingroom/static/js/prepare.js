// The wait put to use: while in line, choose a date and how many seats, look at the prices and the
// seat map (read-only previews), and put money on the balance, so that one's turn goes only on
// picking seats and paying. And be told when the turn comes: a sound, a browser notification.
import {
  $, api, day, limits, localTime, money, num, priceRange, shortMoney, store, text, tooSoon, tryAgainIn,
  notice,
} from "./common.js";

const PREVIEW_MS = 10000; // the server's previews are up to 5 s old anyway
const STATUS = { AVAILABLE: "", PENDING: "held", RESERVED: "sold" };

let concertId = 0, token = "", timer = 0, stopped = false;
let dates = [], plan = { schedule_id: null, quantity: 2 }, lim = null, balance = null;
let audio = null;

const TEMPLATE = `
  <h2 id="prepare-title">Get ready while you wait</h2>
  <p class="muted">Choose now, so that your turn goes on picking seats and paying. Seats can be
    held only once it is your turn; these figures are a preview.</p>
  <h3>1. Date and number of seats</h3>
  <div class="dates" id="plan-dates" role="group" aria-label="Dates"></div>
  <p class="muted" id="plan-none" hidden>No date has seats on sale right now.</p>
  <p class="inline"><label for="plan-n">Seats</label> <select id="plan-n"></select>
    <span id="plan-cost"></span></p>
  <h3>2. A look at the seats</h3>
  <p id="plan-map-text"></p>
  <ul class="legend" aria-hidden="true">
    <li><span class="seat AVAILABLE">1<small class="price-sample">₩</small></span> available, at its price</li>
    <li><span class="seat PENDING">1<small>held</small></span> held by someone</li>
    <li><span class="seat RESERVED">1<small>sold</small></span> sold</li>
  </ul>
  <ul class="seats preview" id="plan-seats" aria-hidden="true"></ul>
  <h3>3. Money for the tickets</h3>
  <p>Balance: <b id="plan-balance">–</b> <span id="plan-need"></span></p>
  <form class="inline" id="plan-charge">
    <label for="plan-amount">Add money (won)</label>
    <input id="plan-amount" type="number" step="1" inputmode="numeric" value="100000" required>
    <button type="submit" class="secondary">Add to balance</button>
  </form>
  <div id="plan-msg" role="status"></div>`;

/** Show the panel and the turn alerts for this ticket. */
export async function start(c) {
  ({ concertId, token } = c);
  alerts();
  plan = { ...plan, ...store.get("plan." + concertId) };
  lim = await limits();
  if (stopped) return;
  const box = $("#prepare");
  box.innerHTML = TEMPLATE;
  const select = $("#plan-n");
  const most = lim ? lim.max_seats_per_user : 4;
  plan.quantity = Math.min(Math.max(1, plan.quantity || 2), most);
  for (let n = 1; n <= most; n += 1) select.add(new Option(n, n, false, n === plan.quantity));
  select.addEventListener("change", () => { plan.quantity = Number(select.value); keep(); showCost(); });
  if (lim) { $("#plan-amount").min = lim.charge_min; $("#plan-amount").max = lim.charge_max; }
  $("#plan-charge").addEventListener("submit", charge);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
  box.hidden = false;
  await Promise.all([loadBalance(), refresh()]);
}

/** The wait is over: no more previews. */
export function stop() {
  stopped = true;
  clearTimeout(timer);
}

const keep = () => store.set("plan." + concertId, plan);
const chosen = () => dates.find((d) => d.id === plan.schedule_id);

function say(message, kind = "ok") {
  notice($("#plan-msg"), message, kind);
}

// -- dates, seats and prices -------------------------------------------------------------
async function refresh() {
  clearTimeout(timer);
  if (stopped) return;
  try {
    dates = await api("GET", `/api/v1/concerts/${concertId}/preview`, { token });
    if (stopped) return;
    if (!chosen()) plan.schedule_id = (dates.find((d) => d.available_seats > 0) || dates[0] || {}).id ?? null;
    showDates();
    if (plan.schedule_id !== null) await showMap();
  } catch (e) {
    if (e.status === 401 || e.status === 410) return stop(); // the ticket is over: the page says so
    text($("#plan-map-text"), "The preview could not be loaded just now; it will try again.");
  }
  if (!stopped && document.visibilityState === "visible") timer = setTimeout(refresh, PREVIEW_MS);
}

function showDates() {
  const box = $("#plan-dates");
  box.replaceChildren();
  for (const d of dates) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${day(d.concert_date)} · ${d.available_seats ? num(d.available_seats) + " left" : "sold out"}`
      + ` · ${priceRange(d.price_min, d.price_max)}`;
    b.setAttribute("aria-pressed", String(d.id === plan.schedule_id));
    b.addEventListener("click", () => {
      plan.schedule_id = d.id;
      keep();
      refresh();
    });
    box.append(b);
  }
  $("#plan-none").hidden = dates.some((d) => d.available_seats > 0);
  showCost();
}

async function showMap() {
  const id = plan.schedule_id;
  const seats = await api("GET", `/api/v1/schedules/${id}/preview`, { token });
  if (id !== plan.schedule_id || stopped) return;
  const list = $("#plan-seats");
  list.replaceChildren();
  for (const s of seats) {
    const li = document.createElement("li");
    li.className = "seat " + s.status;
    li.append(String(s.seat_number));
    const small = document.createElement("small");
    small.textContent = STATUS[s.status] || shortMoney(s.price);
    li.append(small);
    list.append(li);
  }
  const free = seats.filter((s) => s.status === "AVAILABLE");
  if (seats.length) text($(".price-sample"), shortMoney(Math.min(...seats.map((s) => s.price))));
  const d = chosen();
  text($("#plan-map-text"), `${d ? day(d.concert_date) + ": " : ""}${num(free.length)} of ${num(seats.length)} seats`
    + ` available${free.length ? ", " + priceRange(Math.min(...free.map((s) => s.price)), Math.max(...free.map((s) => s.price)))
      + " a seat" : ""}. Updated ${localTime(new Date())}.`);
}

function showCost() {
  const d = chosen();
  const n = plan.quantity;
  text($("#plan-cost"), d ? `${n} × ${priceRange(d.price_min, d.price_max)} = ${priceRange(n * d.price_min, n * d.price_max)}` : "");
  showNeed();
}

// -- the balance -------------------------------------------------------------------------
function showNeed() {
  const d = chosen();
  if (balance === null || !d) return;
  const most = plan.quantity * d.price_max;
  const short = most - balance;
  text($("#plan-need"), short > 0 ? `— add ${money(short)} to cover ${plan.quantity} seat${plan.quantity > 1 ? "s" : ""} at the highest price.`
    : "— enough for your seats.");
  const amount = $("#plan-amount");
  if (short > 0 && document.activeElement !== amount) amount.value = Math.max(lim ? lim.charge_min : 1, short);
}

function showBalance(b) {
  balance = b;
  text($("#plan-balance"), money(b));
  showNeed();
}

async function loadBalance() {
  try { showBalance((await api("GET", "/api/v1/balance", { token })).balance); } catch { /* shown as – */ }
}

async function charge(ev) {
  ev.preventDefault();
  if (tooSoon()) { say(tryAgainIn(tooSoon()), "warn"); return; }
  const amount = Number($("#plan-amount").value);
  if (!Number.isSafeInteger(amount) || (lim && (amount < lim.charge_min || amount > lim.charge_max))) {
    say(lim ? `Add a whole number of won from ${num(lim.charge_min)} to ${num(lim.charge_max)} at a time.`
      : "Add a whole number of won at a time.", "bad");
    return;
  }
  try {
    showBalance((await api("POST", "/api/v1/balance/charges", { token, body: { amount } })).balance);
    say(`Added ${money(amount)}. Your balance is now ${money(balance)}.`);
  } catch (e) {
    say(e.code === "rate_limited" ? tryAgainIn(e.retryAfter) : "Could not add the money. " + e.message,
      e.code === "rate_limited" ? "warn" : "bad");
  }
}

// -- told when it's one's turn -----------------------------------------------------------
function alerts() {
  $("#alerts").hidden = false;
  const sound = $("#sound");
  sound.checked = store.get("sound") === true;
  sound.addEventListener("change", () => {
    store.set("sound", sound.checked);
    if (sound.checked) chime(); // what it will sound like, and a gesture that lets it play later
  });
  // Browsers let a page make sound only after a gesture: the first one on the page opens it.
  const unlock = () => { if (sound.checked) openAudio(); };
  addEventListener("pointerdown", unlock, { once: true, capture: true });
  addEventListener("keydown", unlock, { once: true, capture: true });

  const button = $("#notify");
  const mobile = navigator.userAgentData ? navigator.userAgentData.mobile : /Mobi|Android/.test(navigator.userAgent);
  if (!("Notification" in window) || mobile) return; // phones show page notifications only through a service worker
  const show = () => {
    const p = Notification.permission;
    button.hidden = p !== "default";
    text($("#notify-state"), p === "granted" ? "You will get a notification."
      : p === "denied" ? "Notifications are blocked for this site in your browser's settings." : "");
  };
  button.addEventListener("click", () => Notification.requestPermission().then(show, show));
  show();
}

function openAudio() {
  try {
    audio ||= new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch { audio = null; }
  return audio;
}

/** A short rising three-note chime, made on the spot. */
function chime() {
  const a = openAudio();
  if (!a) return;
  const now = a.currentTime + 0.05;
  [659.25, 880, 1318.5].forEach((f, i) => {
    const o = a.createOscillator(), g = a.createGain();
    const t0 = now + i * 0.16;
    o.type = "sine";
    o.frequency.value = f;
    g.gain.setValueAtTime(0.0001, t0);
    g.gain.exponentialRampToValueAtTime(0.25, t0 + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.45);
    o.connect(g).connect(a.destination);
    o.start(t0);
    o.stop(t0 + 0.5);
  });
}

/** It's the turn of this page's ticket: a sound and a notification, where asked for. */
export function ring(name, expiresAt) {
  if ($("#sound").checked) chime();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification("It's your turn" + (name ? " — " + name : ""), {
      body: `Choose your seats and pay before ${localTime(expiresAt)}.`, tag: "wr-turn-" + concertId,
      requireInteraction: true,
    });
    n.onclick = () => { focus(); n.close(); };
  } catch { /* no notifications from pages here */ }
}

// Holding seats, the balance, paying and the receipt: the booking page's side of the sale.
import { $, api, clock, dropTicket, everySecond, money, num, secondsLeft, store, text, uuid } from "./common.js";
import { state } from "./book-state.js";
import { keepReceipt, receipts, showReceipts } from "./receipt.js";
import { alertBox, dateOf, holdOff, plain, say, seatList, tokenTrouble, tooBusy } from "./book-ui.js";

const BEST_SEATS = 2; // what "pick the … best seats for me" offers first


/**
 * Wires the balance, hold and payment controls of the page. `map` is the seat map (seatmap.js);
 * `refreshSeats()` asks the server for the map again.
 */
export function checkout({ map, refreshSeats }) {
  const holdKey = "hold." + state.concertId;
  const token = () => state.ticket.token;

  /**
   * The server's limits on the charge form and on the "best seats" choice. Without them (null)
   * the form sets no bounds of its own and the server's answers explain any mistake.
   */
  function useLimits(limits) {
    state.limits = limits;
    if (limits) {
      $("#charge-amount").min = limits.charge_min;
      $("#charge-amount").max = limits.charge_max;
    }
    const most = limits ? limits.max_seats_per_user : BEST_SEATS;
    const first = Math.min((state.plan && state.plan.quantity) || BEST_SEATS, most);
    const select = $("#best-n");
    select.replaceChildren();
    for (let n = 1; n <= most; n += 1) select.add(new Option(n, n, n === first, n === first));
  }

  /** What a charge may be, in words; null while the limits are unknown. */
  function chargeRule() {
    const l = state.limits;
    return l && `Add a whole number of won from ${num(l.charge_min)} to ${num(l.charge_max)} at a time.`;
  }

  // -- balance ---------------------------------------------------------------------------
  function showBalance(b) {
    state.balance = b;
    text($("#balance"), money(b));
    showNeed();
  }

  /** The pay step says whether the balance covers the hold, and offers the difference. */
  function showNeed() {
    const h = state.hold;
    if (!h || state.balance === null) return;
    const short = h.total_price - state.balance;
    text($("#pay-need"), short > 0
      ? `Your balance is ${money(state.balance)}: add ${money(short)} or more to pay.`
      : `Your balance of ${money(state.balance)} covers it.`);
    const least = state.limits ? state.limits.charge_min : 1;
    if (short > 0 && document.activeElement !== $("#charge-amount")) $("#charge-amount").value = Math.max(least, short);
  }

  async function loadBalance() {
    try { showBalance((await api("GET", "/api/v1/balance", { token: token() })).balance); }
    catch (e) { if (!tokenTrouble(e)) alertBox("Could not load your balance. " + plain(e)); }
  }

  $("#charge").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (holdOff()) return;
    const amount = Number($("#charge-amount").value);
    const l = state.limits;
    if (!Number.isSafeInteger(amount) || (l && (amount < l.charge_min || amount > l.charge_max))) {
      alertBox(chargeRule() || "Add a whole number of won at a time.");
      return;
    }
    try {
      showBalance((await api("POST", "/api/v1/balance/charges", { token: token(), body: { amount } })).balance);
      alertBox(`Added ${money(amount)}. Your balance is now ${money(state.balance)}.`, "ok");
    } catch (e) {
      if (tokenTrouble(e) || tooBusy(e)) return;
      alertBox((e.code === "validation_error" && chargeRule()) || "Could not add the money. " + plain(e));
    }
  });

  // -- holds -----------------------------------------------------------------------------
  /** The "Hold the picked seats" button follows the picks and the hold. */
  function showPicked() {
    const b = $("#hold-picked");
    const picked = map.picked();
    b.disabled = !picked.length || !!state.hold;
    text(b, picked.length ? `Hold ${seatList(picked)}` : "Hold the picked seats");
  }

  /** The map shows the held seats as the user's own, on the held date only. */
  function showMine() {
    const h = state.hold;
    map.setMine(h && h.schedule_id === state.scheduleId ? h.seats.map((s) => s.seat_number) : []);
  }

  async function takeHold(body) {
    if (holdOff()) return;
    alertBox("");
    try {
      const r = await api("POST", "/api/v1/reservations",
        { token: token(), body: { schedule_id: state.scheduleId, ...body } });
      map.unpick();
      showHold(r);
      $("#hold-title").focus({ preventScroll: true });
      $("#hold").scrollIntoView({ block: "nearest", behavior: "smooth" });
      say(`Holding ${seatList(r.seats.map((s) => s.seat_number))} for you.`);
    } catch (e) {
      if (tokenTrouble(e) || tooBusy(e)) return;
      if (e.code === "seat_unavailable") {
        const gone = e.problem.seats || [];
        map.unpick(gone);
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

  $("#hold-picked").addEventListener("click", () => takeHold({ seat_numbers: map.picked() }));
  $("#best").addEventListener("submit", (ev) => {
    ev.preventDefault();
    takeHold({ quantity: Number($("#best-n").value) });
  });

  function showHold(r) {
    const hold = { ...r, key: state.hold && state.hold.id === r.id ? state.hold.key : null };
    state.hold = hold;
    store.set(holdKey, hold);
    $("#hold").hidden = false;
    text($("#hold-seats"), hold.seats.map((s) => s.seat_number).join(", "));
    text($("#hold-date"), dateOf(hold.schedule_id));
    text($("#hold-total"), money(hold.total_price));
    text($("#pay"), `Pay ${money(hold.total_price)}`);
    if (state.stopHold) state.stopHold();
    state.stopHold = everySecond(() => {
      text($("#hold-left"), clock(state.hold.hold_expires_at));
      if (secondsLeft(state.hold.hold_expires_at) <= 0) {
        dropHold();
        alertBox("Your hold ran out, so those seats are on sale again. Pick seats again.");
        setTimeout(refreshSeats, 1500); // the deadline is shown rounded down to the second
      }
    });
    showMine();
    showPicked();
    showNeed();
  }

  function dropHold() {
    if (state.stopHold) { state.stopHold(); state.stopHold = null; }
    state.hold = null;
    store.drop(holdKey);
    $("#hold").hidden = true;
    showMine();
    showPicked();
  }

  $("#release").addEventListener("click", async () => {
    if (holdOff()) return;
    try {
      await api("DELETE", `/api/v1/reservations/${state.hold.id}`, { token: token() });
      dropHold();
      alertBox("Released: those seats are on sale again.", "ok");
    } catch (e) {
      if (tokenTrouble(e) || tooBusy(e)) return;
      if (e.code === "not_found" || e.code === "hold_expired") dropHold();
      alertBox("Could not release the seats. " + plain(e));
    }
    await refreshSeats();
  });

  // -- paying ----------------------------------------------------------------------------
  async function pay(tries = 0) {
    if (holdOff()) return;
    alertBox("");
    const hold = state.hold;
    // One key per payment attempt, kept until it succeeds: a retry can never charge twice.
    if (!hold.key) { hold.key = uuid(); store.set(holdKey, hold); }
    const button = $("#pay");
    button.disabled = true;
    try {
      const p = await api("POST", "/api/v1/payments", {
        token: token(), body: { reservation_id: hold.id }, headers: { "Idempotency-Key": hold.key },
      });
      showBalance(p.balance);
      keepReceipt(state.concertId, {
        concert: state.concertName, date: dateOf(hold.schedule_id), seats: hold.seats.map((s) => s.seat_number),
        amount: p.amount, payment: p.id, balance: p.balance,
      });
      dropHold();
      dropTicket(state.concertId);
      showReceipt();
    } catch (e) {
      button.disabled = false;
      if (tokenTrouble(e) || tooBusy(e)) return;
      switch (e.code) {
        case "insufficient_balance": {
          await loadBalance();
          const least = state.limits ? state.limits.charge_min : 0;
          $("#charge-amount").value = Math.max(least, hold.total_price - (state.balance ?? 0));
          alertBox(`Your balance (${money(state.balance ?? 0)}) is less than the ${money(hold.total_price)} total. ` +
            "Add money here, then press Pay again.");
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

  /** The purchases made here (this one first): the page's end. */
  function showReceipt() {
    state.closed = true;
    clearTimeout(state.seatsTimer);
    if (state.stopWindow) state.stopWindow();
    $("#shop").hidden = true;
    $("#blocked").hidden = true;
    $("#done").hidden = false;
    const list = receipts(state.concertId);
    showReceipts($("#receipt"), list);
    text($("#title"), "Booking confirmed");
    document.title = "Booking confirmed" + (state.concertName ? " — " + state.concertName : "");
    if (list.length) say("Booking confirmed: " + seatList(list[0].seats) + ".");
    $("#done-title").focus();
  }

  return { useLimits, loadBalance, showHold, dropHold, showMine, showPicked, showReceipt };
}

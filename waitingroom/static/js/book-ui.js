// What the booking page tells its user: the alert box, the status line, words for seats, dates and
// errors, and the card that ends a visit when the queue ticket can book no more.
import { $, day, notice, text, tooSoon, tryAgainIn } from "./common.js";
import { state } from "./book-state.js";

export function alertBox(message, kind = "bad") {
  notice($("#alert"), message, kind);
}

export const say = (message) => text($("#status"), message);

export function seatList(numbers) {
  const s = [...numbers].sort((a, b) => a - b);
  return s.length === 1 ? "seat " + s[0] : "seats " + s.slice(0, -1).join(", ") + " and " + s.at(-1);
}

/** A date of the concert, by schedule id, in the reader's words ("" when unknown). */
export function dateOf(id) {
  const s = state.schedules.find((x) => x.id === id);
  return s ? day(s.concert_date) : "";
}

export function plain(e) {
  switch (e.code) {
    case "network": return "The server could not be reached. Check your connection and try again.";
    case "service_unavailable": case "server": return "The service is busy right now. Try again in a moment.";
    case "validation_error": return "Something in that request was not right: " + e.message;
    case "rate_limited": return tryAgainIn(e.retryAfter);
    default: return e.message;
  }
}

/**
 * Stop everything and explain why this ticket can book no more; `requeue` is the words of the
 * button that joins the queue again, or null for none (there is no queue to join).
 */
export function blocked(title, body, requeue = "Join the queue again") {
  state.closed = true;
  clearTimeout(state.seatsTimer);
  if (state.stopWindow) state.stopWindow();
  if (state.stopHold) state.stopHold();
  $("#shop").hidden = true;
  $("#blocked").hidden = false;
  text($("#blocked-title"), title);
  text($("#blocked-text"), body);
  $("#requeue").hidden = !requeue;
  if (requeue) text($("#requeue"), requeue);
  else text($("#blocked-home"), "See the concerts on sale");
  $("#blocked-home").classList.toggle("secondary", !!requeue);
  document.title = title;
  alertBox("");
  say(title);
}

/** Token problems end the visit; true when the error was one. */
export function tokenTrouble(e) {
  switch (e.code) {
    case "token_not_admitted":
      location.replace("/queue/" + state.concertId);
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

/**
 * The server is busy (a 429) with something the user did: nothing is retried behind their back,
 * they are told when to try again. True when the error was one.
 */
export function tooBusy(e) {
  if (e.code !== "rate_limited") return false;
  alertBox(tryAgainIn(e.retryAfter), "warn");
  return true;
}

/** True, and says when to try again, while the server still wants us to hold off after a 429. */
export function holdOff() {
  const s = tooSoon();
  if (s) alertBox(tryAgainIn(s), "warn");
  return s > 0;
}

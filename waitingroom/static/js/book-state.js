// The booking page's state, in one object that the page's modules share (book.js wires them).
import { pathId, store, ticket } from "./common.js";

const concertId = pathId();

export const state = {
  concertId,
  ticket: ticket(concertId), // the queue ticket: {token, first, expires_at}, or null
  concertName: "",
  schedules: [], // the concert's dates, each with its count of free seats
  scheduleId: null, // the date on the seat map
  hold: store.get("hold." + concertId), // the reservation, plus its payment's Idempotency-Key
  plan: store.get("plan." + concertId), // {schedule_id, quantity} chosen while waiting, or null
  balance: null,
  limits: null, // the server's limits (GET /api/v1/limits), once known; null if they could not be had
  closed: false, // paid for, or blocked: the page does nothing more
  seatsTimer: 0, // the next refresh of the seat map
  seatsAsked: 0, // refreshes asked for: only the newest answer may paint
  stopWindow: null, // stops the booking window's countdown
  stopHold: null, // stops the hold's countdown
};

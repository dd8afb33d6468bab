// Receipts, kept in this browser: a paid-for queue ticket is used up, so Back, a reload or a later
// visit shows what was bought from here instead of queueing the buyer again.
import { money, store } from "./common.js";

const KEEP = 20;
const key = (concertId) => "receipts." + concertId;

/** This concert's receipts in this browser, newest first. */
export function receipts(concertId) {
  const list = store.get(key(concertId)) || [];
  const old = store.get("receipt." + concertId); // one receipt, as earlier pages kept it
  if (old && !list.some((r) => r.payment === old.payment)) list.push(old);
  return list;
}

export function keepReceipt(concertId, r) {
  const list = receipts(concertId).filter((x) => x.payment !== r.payment);
  list.unshift(r);
  store.set(key(concertId), list.slice(0, KEEP));
  store.drop("receipt." + concertId);
}

/** Fill `box` with these receipts, one block each. */
export function showReceipts(box, list) {
  box.replaceChildren();
  for (const r of list) {
    const div = document.createElement("div");
    div.className = "receipt";
    const line = (label, value) => {
      const p = document.createElement("p");
      const b = document.createElement("b");
      b.textContent = value;
      p.append(label + " ", b);
      div.append(p);
    };
    line("Concert:", r.concert || "your concert");
    line("Date:", r.date);
    line(r.seats.length === 1 ? "Seat:" : "Seats:", r.seats.join(", "));
    line("Paid:", money(r.amount) + ` (payment #${r.payment})`);
    line("Balance left:", money(r.balance));
    box.append(div);
  }
}

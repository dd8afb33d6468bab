// The seat map: a grid of seat buttons, each with its price with one tab stop for the whole map (the arrow keys, Home and
// End move; Enter or Space picks). It knows seats, their prices and statuses, and which are picked;
// what a pick leads to is for the page to decide.
import { money, shortMoney, text } from "./common.js";

// What a seat says under its number: its price while it is on sale, else what it is.
const LABEL = { PENDING: "held", RESERVED: "sold", MINE: "yours", PICKED: "✓ picked" };
const SPOKEN = { AVAILABLE: "available", PENDING: "held by someone", RESERVED: "sold", MINE: "yours, held for you" };

/**
 * A seat map in `grid`, empty until render(). Callbacks:
 * - canPick(n): return false to refuse any pick just now;
 * - onRefused(n, why): seat n is not on sale, `why` says so in words ("sold", "held by someone");
 * - onPick(picked): a seat was picked or unpicked; `picked` is the picked seat numbers, in order.
 */
export function seatMap(grid, { canPick = () => true, onRefused = () => {}, onPick = () => {} } = {}) {
  const seats = new Map(); // seat number → {el, status, price}
  const picked = new Set();
  const mine = new Set(); // seats shown as the user's own, whatever their status
  const pickedList = () => [...picked].sort((a, b) => a - b);

  function paint(n) {
    const s = seats.get(n);
    const status = mine.has(n) ? "MINE" : s.status;
    const chosen = picked.has(n);
    const cls = "seat " + status;
    if (s.el.className !== cls) s.el.className = cls;
    text(s.el.lastChild, chosen ? LABEL.PICKED : LABEL[status] || shortMoney(s.price));
    s.el.setAttribute("aria-pressed", String(chosen));
    s.el.setAttribute("aria-disabled", String(status !== "AVAILABLE"));
    s.el.setAttribute("aria-label", `Seat ${n}, ${money(s.price)}, ${chosen ? "picked" : SPOKEN[status]}`);
  }

  function toggle(n) {
    const s = seats.get(n);
    if (!canPick(n)) return;
    if (s.status !== "AVAILABLE") {
      onRefused(n, SPOKEN[s.status]);
      return;
    }
    if (picked.has(n)) picked.delete(n); else picked.add(n);
    paint(n);
    onPick(pickedList());
  }

  function button(n) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "seat";
    b.tabIndex = -1;
    b.innerHTML = `<span></span><small></small>`;
    b.firstChild.textContent = n;
    b.addEventListener("click", () => toggle(n));
    return b;
  }

  // Arrow keys move between seats (one tab stop for the whole map).
  grid.addEventListener("keydown", (ev) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
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

  return {
    /** Show these seats ({seat_number, status, price}), adding new ones; a seat not on sale is unpicked. */
    render(list) {
      for (const s of list) {
        let seat = seats.get(s.seat_number);
        if (!seat) {
          seat = { el: button(s.seat_number) };
          seats.set(s.seat_number, seat);
          grid.append(seat.el);
        }
        seat.status = s.status;
        seat.price = s.price;
        if (s.status !== "AVAILABLE") picked.delete(s.seat_number);
        paint(s.seat_number);
      }
      if (!grid.querySelector('[tabindex="0"]') && grid.firstChild) grid.firstChild.tabIndex = 0;
    },
    /** Show these seat numbers as the user's own ("yours"), and no others. */
    setMine(numbers) {
      mine.clear();
      for (const n of numbers) mine.add(n);
      for (const n of seats.keys()) paint(n);
    },
    /** Forget every seat (another date is coming). */
    clear() {
      seats.clear();
      picked.clear();
      mine.clear();
      grid.replaceChildren();
    },
    /** The picked seat numbers, in order. */
    picked: pickedList,
    /** Unpick these seats (all of them by default). */
    unpick(numbers = [...picked]) {
      for (const n of numbers) {
        picked.delete(n);
        if (seats.has(n)) paint(n);
      }
    },
  };
}

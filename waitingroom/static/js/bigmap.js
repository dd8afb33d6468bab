// The seat map of a big venue: a scrolling box as tall as the whole map in which only the rows near
// the view exist as seat buttons. Seats are laid out by number, in sections of SECTION seats and
// rows of 10 (5 on a phone), and fetched in ranges of RANGE seats as their rows come near the view;
// each range keeps its ETag, and the page's refresh cycle revalidates the ranges in view only (an
// unchanged range answers 304). One tab stop for the whole map: the arrow keys move across every
// seat, Page Up/Down ten rows, Home and End to the first and last seat, loading as they go.
import { money, num, shortMoney, text } from "./common.js";

export const RANGE = 500; // seats per request
const SECTION = 1000; // seats per section of the map
const MARGIN = 1; // views' worth of rows kept ready above and below the one shown
const STALE_MS = 5000; // a range older than this is revalidated when it comes back into view
const PAGE_ROWS = 10;

const LABEL = { PENDING: "held", RESERVED: "sold", MINE: "yours", PICKED: "✓ picked" };
const SPOKEN = { AVAILABLE: "available", PENDING: "held by someone", RESERVED: "sold", MINE: "yours, held for you" };

/**
 * A big seat map in `box` (off until open()). `fetchRange(first, last, etag)` resolves with
 * {list, etag}, or null when the range is unchanged (304); `onError(e)` hears a failed fetch.
 * canPick, onRefused and onPick as in seatmap.js; `onSeats(list)` hears every fresh range.
 */
export function bigMap(box, { fetchRange, onError = () => {}, canPick = () => true, onRefused = () => {},
                              onPick = () => {}, onSeats = () => {} } = {}) {
  let on = false;
  let generation = 0; // bumped by clear(): answers for an older map are dropped
  let last = 0; // the highest seat number of the date
  let cols = 10;
  let head = 0, pitch = 0; // px: a section's heading, a row of seats (with its gap)
  let cur = 1; // the seat that holds the map's tab stop
  let frame = 0;
  const data = new Map(); // seat number → {status, price}
  const ranges = new Map(); // range index → {etag, at, busy}
  const rows = new Map(); // row index → element
  const els = new Map(); // seat number → its button, while its row exists
  const heads = new Map(); // section index → element
  const picked = new Set();
  const mine = new Set();
  const pickedList = () => [...picked].sort((a, b) => a - b);
  const spacer = document.createElement("div");
  spacer.className = "seat-spacer";

  // -- layout -----------------------------------------------------------------------------
  const rowsPer = () => Math.ceil(SECTION / cols);
  const sectionHeight = () => head + rowsPer() * pitch;
  const sectionOfRow = (g) => Math.floor(g / rowsPer());
  const rowOf = (n) => Math.floor((n - 1) / SECTION) * rowsPer() + Math.floor(((n - 1) % SECTION) / cols);
  const firstSeat = (g) => sectionOfRow(g) * SECTION + (g % rowsPer()) * cols + 1;
  const rowTop = (g) => sectionOfRow(g) * sectionHeight() + head + (g % rowsPer()) * pitch;
  const lastRow = () => rowOf(last);

  /** The row at height y of the map (a heading counts as its section's first row). */
  function rowAt(y) {
    const s = Math.max(0, Math.floor(y / sectionHeight()));
    const r = Math.floor((y - s * sectionHeight() - head) / pitch);
    return Math.min(lastRow(), s * rowsPer() + Math.max(0, Math.min(rowsPer() - 1, r)));
  }

  /** Rows, seats per row and the sizes of things, from the page's CSS as it is now. */
  function measure() {
    cols = matchMedia("(max-width: 40rem)").matches ? 5 : 10;
    const row = makeRow(0);
    const h = makeHead(0);
    box.append(row, h);
    pitch = row.offsetHeight;
    head = h.offsetHeight;
    row.remove();
    h.remove();
  }

  // -- seats ------------------------------------------------------------------------------
  const words = new Map(); // price → [its short form, its long form]: formatted once
  function priced(p) {
    let w = words.get(p);
    if (!w) words.set(p, (w = [shortMoney(p), money(p)]));
    return w;
  }

  function paint(n) {
    const el = els.get(n);
    if (!el) return;
    const s = data.get(n);
    const chosen = picked.has(n);
    if (!s) {
      el.className = "seat loading";
      text(el.lastChild, "…");
      el.setAttribute("aria-pressed", "false");
      el.setAttribute("aria-disabled", "true");
      el.setAttribute("aria-label", `Seat ${n}, loading`);
      return;
    }
    const status = mine.has(n) ? "MINE" : s.status;
    const cls = "seat " + status;
    const [short, long] = priced(s.price);
    if (el.className !== cls) el.className = cls;
    text(el.lastChild, chosen ? LABEL.PICKED : LABEL[status] || short);
    el.setAttribute("aria-pressed", String(chosen));
    el.setAttribute("aria-disabled", String(status !== "AVAILABLE"));
    el.setAttribute("aria-label", `Seat ${n}, ${long}, ${chosen ? "picked" : SPOKEN[status]}`);
  }

  function toggle(n) {
    const s = data.get(n);
    if (!s || !canPick(n)) return;
    if (mine.has(n) || s.status !== "AVAILABLE") {
      onRefused(n, SPOKEN[mine.has(n) ? "MINE" : s.status]);
      return;
    }
    if (picked.has(n)) picked.delete(n); else picked.add(n);
    paint(n);
    onPick(pickedList());
  }

  // A seat button to copy: cheaper than building each one.
  const model = document.createElement("button");
  model.type = "button";
  model.className = "seat";
  model.tabIndex = -1;
  model.append(document.createElement("span"), document.createElement("small"));

  function makeRow(g) {
    const row = document.createElement("div");
    row.className = "seat-row";
    const from = firstSeat(g);
    const to = Math.min(last || from + cols - 1, from + cols - 1, (sectionOfRow(g) + 1) * SECTION);
    for (let n = from; n <= to; n += 1) {
      const b = model.cloneNode(true);
      b.dataset.n = n;
      if (n === cur) b.tabIndex = 0;
      b.firstChild.textContent = n;
      row.append(b);
    }
    return row;
  }

  function makeHead(s) {
    const h = document.createElement("div");
    h.className = "seat-section";
    const to = last ? Math.min(last, (s + 1) * SECTION) : (s + 1) * SECTION;
    h.textContent = `Section ${s + 1} · seats ${num(s * SECTION + 1)}–${num(to)}`;
    return h;
  }

  // -- what is on screen ------------------------------------------------------------------
  /** The rows in view: [first, last]. */
  function inView() {
    return [rowAt(box.scrollTop), rowAt(box.scrollTop + box.clientHeight)];
  }

  /** Make the rows near the view (and the tab stop's) exist, and drop the others. */
  function draw() {
    frame = 0;
    if (!on) return;
    const [a, b] = inView();
    const spare = (b - a + 1) * MARGIN;
    const lo = Math.max(0, a - spare), hi = Math.min(lastRow(), b + spare);
    const keep = rowOf(cur);
    for (const [g, el] of rows) {
      if ((g < lo || g > hi) && g !== keep) dropRow(g, el);
    }
    for (const [s, el] of heads) {
      if (s < sectionOfRow(lo) || s > sectionOfRow(hi)) { el.remove(); heads.delete(s); }
    }
    for (let g = lo; g <= hi; g += 1) addRow(g);
    addRow(keep);
    for (let s = sectionOfRow(lo); s <= sectionOfRow(hi); s += 1) {
      if (heads.has(s)) continue;
      const h = makeHead(s);
      h.style.top = s * sectionHeight() + "px";
      heads.set(s, h);
      box.append(h);
    }
    load(lo, hi, false);
  }

  function addRow(g) {
    if (rows.has(g) || g < 0 || g > lastRow()) return;
    const el = makeRow(g);
    el.style.top = rowTop(g) + "px";
    rows.set(g, el);
    for (const b of el.children) {
      els.set(Number(b.dataset.n), b);
      paint(Number(b.dataset.n));
    }
    box.append(el); // painted first: one layout for the row, not one per seat
  }

  function dropRow(g, el) {
    el.remove();
    rows.delete(g);
    for (const b of el.children) els.delete(Number(b.dataset.n));
  }

  function dropAll() {
    for (const [g, el] of rows) dropRow(g, el);
    for (const el of heads.values()) el.remove();
    heads.clear();
  }

  const later = () => { if (!frame) frame = requestAnimationFrame(draw); };

  // -- ranges -----------------------------------------------------------------------------
  /** Fetch the ranges of rows lo..hi that are missing, or stale (`all`: every one, revalidated). */
  function load(lo, hi, all) {
    const want = [];
    const r0 = Math.floor((firstSeat(lo) - 1) / RANGE);
    const r1 = Math.floor((Math.min(last, firstSeat(hi) + cols - 1) - 1) / RANGE);
    for (let r = r0; r <= r1; r += 1) {
      const got = ranges.get(r);
      if (got && got.busy) continue;
      if (!all && got && performance.now() - got.at < STALE_MS) continue;
      want.push(fetchOne(r));
    }
    return Promise.all(want);
  }

  async function fetchOne(r) {
    const gen = generation;
    const got = ranges.get(r) || { etag: null, at: 0, busy: false };
    ranges.set(r, got);
    got.busy = true;
    try {
      const answer = await fetchRange(r * RANGE + 1, (r + 1) * RANGE, got.etag);
      if (gen !== generation) return;
      got.at = performance.now();
      if (answer) {
        got.etag = answer.etag;
        take(answer.list);
      }
    } catch (e) {
      if (gen === generation) onError(e);
    } finally {
      got.busy = false;
    }
  }

  /** Seats from the server: kept, and repainted where they are on screen. */
  function take(list) {
    let unpicked = false;
    for (const s of list) {
      data.set(s.seat_number, { status: s.status, price: s.price });
      if (s.status !== "AVAILABLE" && picked.delete(s.seat_number)) unpicked = true;
      paint(s.seat_number);
    }
    onSeats(list);
    if (unpicked) onPick(pickedList());
  }

  // -- keys -------------------------------------------------------------------------------
  /** Move the tab stop to seat n, bring its row into view and focus it. */
  function go(n) {
    const old = els.get(cur);
    if (old) old.tabIndex = -1;
    cur = n;
    const g = rowOf(n);
    const top = rowTop(g);
    if (top < box.scrollTop + (g % rowsPer() === 0 ? head : 0)) {
      box.scrollTop = top - (g % rowsPer() === 0 ? head : 0);
    } else if (top + pitch > box.scrollTop + box.clientHeight) {
      box.scrollTop = top + pitch - box.clientHeight;
    }
    draw();
    const el = els.get(n);
    el.tabIndex = 0;
    el.focus({ preventScroll: true });
  }

  box.addEventListener("keydown", (ev) => {
    if (!on || !ev.target.dataset || !ev.target.dataset.n) return;
    const n = Number(ev.target.dataset.n);
    const page = PAGE_ROWS * cols;
    const to = { ArrowLeft: n - 1, ArrowRight: n + 1, ArrowUp: n - cols, ArrowDown: n + cols,
                 PageUp: n - page, PageDown: n + page, Home: 1, End: last }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    go(Math.max(1, Math.min(last, to)));
  });
  box.addEventListener("click", (ev) => {
    const b = on && ev.target.closest("[data-n]");
    if (b) toggle(Number(b.dataset.n));
  });
  box.addEventListener("focusin", (ev) => {
    const n = on && ev.target.dataset && Number(ev.target.dataset.n);
    if (!n || n === cur) return;
    const old = els.get(cur);
    if (old) old.tabIndex = -1;
    cur = n;
    ev.target.tabIndex = 0;
  });
  box.addEventListener("scroll", later, { passive: true });
  addEventListener("resize", () => {
    if (!on) return;
    const was = cols;
    cols = matchMedia("(max-width: 40rem)").matches ? 5 : 10;
    if (cols !== was) relayout();
  });

  function relayout() {
    const top = firstSeat(rowAt(box.scrollTop));
    dropAll();
    measure();
    spacer.style.height = rowTop(lastRow()) + pitch + "px";
    box.scrollTop = rowTop(rowOf(top));
    draw();
  }

  return {
    /** Whether the map is showing. */
    get on() { return on; },
    /**
     * Show a date whose seats run up to `upTo` (for now: open() again as more is known), with the
     * first range already in hand.
     */
    open(upTo, first) {
      const fresh = !on;
      on = true;
      last = upTo;
      box.classList.add("big");
      if (fresh) {
        box.replaceChildren(spacer);
        measure();
        ranges.set(0, { etag: first.etag, at: performance.now(), busy: false });
        take(first.list);
      } else {
        dropAll();
      }
      spacer.style.height = rowTop(lastRow()) + pitch + "px";
      draw();
    },
    /** Revalidate the ranges in view (the page's refresh cycle). */
    refresh() {
      if (!on) return Promise.resolve();
      const [a, b] = inView();
      return load(a, b, true);
    },
    /** The highest seat number, once known. */
    get last() { return last; },
    setMine(numbers) {
      const was = [...mine];
      mine.clear();
      for (const n of numbers) mine.add(n);
      for (const n of [...was, ...mine]) paint(n);
    },
    clear() {
      generation += 1;
      on = false;
      last = 0;
      cur = 1;
      data.clear();
      ranges.clear();
      rows.clear();
      els.clear();
      heads.clear();
      picked.clear();
      mine.clear();
      box.classList.remove("big");
      box.replaceChildren();
      box.scrollTop = 0;
    },
    picked: pickedList,
    unpick(numbers = [...picked]) {
      for (const n of numbers) {
        picked.delete(n);
        paint(n);
      }
    },
  };
}

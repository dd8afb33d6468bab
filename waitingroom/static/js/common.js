// Shared by every page: the user id, queue tokens per concert, calls to the API (waiting out a busy
// server), formatting.

const KEY = "wr.";

export const store = {
  get(name) {
    try { return JSON.parse(localStorage.getItem(KEY + name)); } catch { return null; }
  },
  set(name, value) {
    try { localStorage.setItem(KEY + name, JSON.stringify(value)); } catch { /* private mode */ }
  },
  drop(name) {
    try { localStorage.removeItem(KEY + name); } catch { /* private mode */ }
  },
};

export const userId = () => store.get("user");

export function setUserId(id) {
  if (String(id) !== String(userId())) {
    // Tokens belong to the previous user: forget them.
    for (const k of Object.keys(localStorage)) {
      if (/^wr\.(ticket|hold|plan|receipts?)\./.test(k)) localStorage.removeItem(k);
    }
  }
  store.set("user", id);
}

/** The queue ticket of a concert: {token, first (position on arrival), expires_at}. */
export const ticket = (concertId) => store.get("ticket." + concertId);
export const saveTicket = (concertId, t) => store.set("ticket." + concertId, t);
export const dropTicket = (concertId) => store.drop("ticket." + concertId);

/** The concert id in the page's path (/queue/7, /book/7). */
export const pathId = () => Number(location.pathname.split("/")[2]);

/** An API answer that is not a success: `code` is the problem's machine word. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status === 0 ? "network" : "unknown");
    this.problem = problem;
  }
}

/** The seconds a 429 asks to wait (its Retry-After), at least 1; a few when it does not say. */
function retryAfter(resp) {
  const s = parseInt(resp.headers.get("Retry-After"), 10);
  return s >= 0 ? Math.max(1, s) : 5;
}

let calmUntil = 0, waits = 0, stopWaits = null;
/** Seconds left before trying again after a 429 (0: go ahead). */
export const tooSoon = () => Math.max(0, Math.ceil((calmUntil - Date.now()) / 1000));
export const tryAgainIn = (s) => `Lots of people right now — please try again in ${s} s.`;

/** The calm notice of the page while calls wait out a 429. */
function showWait() {
  let box = $("#busy");
  if (!box) {
    box = document.createElement("p");
    box.id = "busy";
    box.className = "notice";
    box.setAttribute("role", "status");
    $("main h1").after(box);
  }
  const s = tooSoon();
  text(box, "Lots of people right now — trying again" + (s ? ` in ${s} s…` : "…"));
}

/**
 * Call the API; resolves with the JSON answer (null for 204), rejects with ApiError. `body` goes as
 * JSON (a string as it is). A 429 (code "rate_limited", `retryAfter` seconds) is waited out and the
 * call made again when `patient` (GETs unless told), under a calm notice; else it rejects.
 */
export async function api(method, path, { token, body, headers = {}, patient = method === "GET" } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = "Bearer " + token;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const init = { method, headers: h, cache: "no-store",
                 body: body === undefined || typeof body === "string" ? body : JSON.stringify(body) };
  let waited = false;
  try {
    for (;;) {
      let resp;
      try {
        resp = await fetch(path, init);
      } catch {
        throw new ApiError(0, { code: "network", detail: "The server could not be reached." });
      }
      if (resp.status === 204) return null;
      let data = null;
      try { data = await resp.json(); } catch { /* not JSON */ }
      if (resp.ok) return data;
      const e = new ApiError(resp.status, data || { code: resp.status >= 500 ? "server" : "unknown" });
      if (resp.status !== 429) throw e;
      e.code = "rate_limited";
      e.retryAfter = retryAfter(resp);
      calmUntil = Math.max(calmUntil, Date.now() + e.retryAfter * 1000);
      if (!patient) throw e;
      if (!waited) { waited = true; waits += 1; }
      if (stopWaits) showWait(); else stopWaits = everySecond(showWait);
      await new Promise((r) => setTimeout(r, e.retryAfter * 1000));
    }
  } finally {
    if (waited && !(waits -= 1)) {
      stopWaits();
      stopWaits = null;
      $("#busy")?.remove();
    }
  }
}

/** The server's limits and time windows (GET /api/v1/limits), asked once per page load;
 * resolves with null when they could not be had, so a page works on without them. */
let limitsAsked = null;
export const limits = () => (limitsAsked ||= api("GET", "/api/v1/limits").catch(() => null));

export const $ = (sel, root = document) => root.querySelector(sel);

/** Set an element's text only when it changes (no needless repaints or announcements). */
export function text(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}

const won = new Intl.NumberFormat(undefined, { style: "currency", currency: "KRW" });
const count = new Intl.NumberFormat();
const wonShort = new Intl.NumberFormat(undefined, { style: "currency", currency: "KRW", notation: "compact" });
export const money = (n) => won.format(n);
/** A price in few characters, for a seat's label ("₩100K"). */
export const shortMoney = (n) => wonShort.format(n);
/** A price range: "₩10,000" or "₩10,000–₩30,000". */
export const priceRange = (lo, hi) => (lo === hi ? money(lo) : `${money(lo)}–${money(hi)}`);
/** A concert date ("2026-12-24") in the reader's words: "Thu, Dec 24, 2026". */
export const day = (iso) => new Date(iso + "T00:00:00").toLocaleDateString(undefined,
  { weekday: "short", year: "numeric", month: "short", day: "numeric" });
export const num = (n) => count.format(n);

/** "under a minute", "about 3 min", "about 1 h 20 min". */
export function duration(seconds) {
  if (seconds == null) return "unknown";
  if (seconds < 60) return "under a minute";
  const m = Math.round(seconds / 60);
  if (m < 60) return `about ${m} min`;
  return `about ${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A time span in words: "about 45 seconds", "about a minute", "about 2 minutes", "about an hour". */
export function roughly(seconds) {
  const m = Math.round(seconds / 60), h = Math.round(seconds / 3600);
  const [n, unit] = seconds < 60 ? [Math.round(seconds), "second"] : m < 60 ? [m, "minute"] : [h, "hour"];
  return "about " + (n === 1 ? (unit === "hour" ? "an " : "a ") + unit : `${n} ${unit}s`);
}

/** "4:05" left until an RFC 3339 time, or "0:00". */
export function clock(until) {
  const left = Math.max(0, Math.floor((Date.parse(until) - Date.now()) / 1000));
  const h = Math.floor(left / 3600), m = Math.floor(left / 60) % 60, s = left % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
}

export const secondsLeft = (until) => (Date.parse(until) - Date.now()) / 1000;

export const localTime = (iso) =>
  new Date(iso).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
/** A time of day to the minute ("12:41"), from a date, an RFC 3339 string or milliseconds. */
export const hourMinute = (when) => new Date(when).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });

/** A window in words: "10 minutes", "90 seconds", "about 2 hours". */
export const minutes = (s) => (s % 60 === 0 && s < 7200 ? `${s / 60} minute${s === 60 ? "" : "s"}` : roughly(s));

/** One ticking timer for every countdown on the page; stops when there is none. */
const ticks = new Set();
let tickTimer = 0;
export function everySecond(fn) {
  ticks.add(fn);
  fn();
  if (!tickTimer) tickTimer = setInterval(() => { for (const f of ticks) f(); }, 1000);
  return () => {
    ticks.delete(fn);
    if (!ticks.size) { clearInterval(tickTimer); tickTimer = 0; }
  };
}

/** Show one message in box (or clear it with an empty message); kind: "bad", "ok", "warn". */
export function notice(box, message, kind = "bad") {
  box.replaceChildren();
  if (!message) return;
  const p = document.createElement("p");
  p.className = "notice " + kind;
  p.textContent = message;
  box.append(p);
}

/** A random UUID (an Idempotency-Key), also where crypto.randomUUID is missing (plain http). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

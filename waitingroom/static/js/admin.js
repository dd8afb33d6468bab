// The operators' console: live figures over /admin/ws, controls through the admin API, and a
// what-if preview before a rate or max-active change. The admin key lives in this tab only.
import { $, api, notice, num, roughly, text } from "/static/js/common.js";

const KEY = "wr.admin-key"; // sessionStorage: gone when the tab closes
const HISTORY_MS = 5 * 60 * 1000;
const cards = new Map(); // concert id -> { el, history: [[ms, admitted_total]], ... }
let socket = null, retry = 0;

const key = () => sessionStorage.getItem(KEY);
const field = (card, name) => card.el.querySelector(`[data-f="${name}"]`);
const rate = (r) => (r == null ? "–" : `${Number(r.toFixed(r < 10 ? 2 : 1))}/s`);
const wait = (s) => (s == null ? "never" : s === 0 ? "no time" : roughly(s));

function showKeyForm(message) {
  $("#key-form").hidden = false;
  $("#session").hidden = true;
  notice($("#alert"), message || "");
  $("#key").focus();
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/admin/ws`);
  socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", key: key() }));
  ws.onmessage = (e) => {
    retry = 0;
    const frame = JSON.parse(e.data);
    if (frame.type === "figures") render(frame);
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    $("#live").classList.remove("on");
    if (e.code === 4401) {
      sessionStorage.removeItem(KEY);
      showKeyForm("That admin key is not right.");
      return;
    }
    text($("#live"), "Reconnecting…");
    retry = Math.min(retry + 1, 5);
    setTimeout(() => key() && !socket && connect(), 1000 * retry);
  };
}

function start() {
  $("#key-form").hidden = true;
  $("#session").hidden = false;
  notice($("#alert"), "");
  text($("#live"), "Connecting…");
  connect();
}

function render(frame) {
  $("#live").classList.add("on");
  text($("#live"), "Live");
  text($("#updated"), "Updated " + new Date(frame.at_ms).toLocaleTimeString());
  for (const c of frame.concerts) update(cardOf(c), c, frame.at_ms);
}

function cardOf(c) {
  let card = cards.get(c.id);
  if (card) return card;
  const el = $("#concert-tpl").content.firstElementChild.cloneNode(true);
  el.id = "concert-" + c.id;
  el.setAttribute("aria-labelledby", `concert-${c.id}-name`);
  card = { id: c.id, el, history: [], dirty: false, previewed: null, queue: null };
  field(card, "name").id = `concert-${c.id}-name`;
  wire(card);
  cards.set(c.id, card);
  $("#concerts").append(el);
  return card;
}

function update(card, c, atMs) {
  const q = c.queue;
  card.queue = q;
  text(field(card, "name"), c.name);
  const badge = field(card, "state");
  const state = c.sold_out ? ["Sold out", "sold-out"] : q.paused ? ["Paused", "paused"] : ["Admitting", ""];
  text(badge, state[0]);
  badge.className = "badge " + state[1];
  text(field(card, "waiting"), num(q.waiting));
  text(field(card, "active"), `${num(q.active)} of ${num(q.max_active)}`);
  text(field(card, "chosen"), `${rate(q.chosen_rate)} (${q.rate_reason.replace("_", " ")})`);
  text(field(card, "why"), `${q.admission_mode === "inventory" ? "Inventory-aware" : "Fixed rate"}: ${q.rate_detail}`);
  text(field(card, "seats"), c.seats_left == null ? "–" : num(c.seats_left));
  text(field(card, "holds"), c.holds == null ? "–" : `${num(c.holds)} seats`);
  text(field(card, "sales"), c.sold == null ? "–" : `${num(c.sold)} seats · ${num(c.orders)} orders`);
  text(field(card, "abandoned"), `${num(q.dropped_total)} dropped` +
       (c.timed_out == null ? "" : ` · ${num(c.timed_out)} timed out · ${num(c.left)} left`));
  const eta = q.eta_error;
  for (const el of card.el.querySelectorAll('[data-if="eta_error"]')) el.hidden = !eta;
  const pct = (x) => `${Math.round(x * 1000) / 10} %`;
  if (eta) text(field(card, "eta_error"), eta.samples && eta.median !== null
    ? `median ${pct(eta.median)}, p90 ${pct(eta.p90)} off (${num(eta.samples)} admitted)`
    : "no one admitted yet to score");
  const hasOpens = "opens_at" in q;
  for (const el of card.el.querySelectorAll('[data-if="opens_at"]')) el.hidden = !hasOpens;
  if (hasOpens) text(field(card, "opens"), q.opens_at ? new Date(q.opens_at).toLocaleString() : "not set");
  text(field(card, "pause"), q.paused ? "Resume admission" : "Pause admission");
  fillControls(card, q);
  chart(card, atMs, q.admitted_total, c.measured_rate);
}

function fillControls(card, q) {
  if (card.dirty || card.el.contains(document.activeElement)) return;
  field(card, "admit_rate").value = q.admit_rate;
  field(card, "max_active").value = q.max_active;
  field(card, "mode").value = q.admission_mode;
  if ("opens_at" in q) {
    const local = q.opens_at ? new Date(Date.parse(q.opens_at) - new Date().getTimezoneOffset() * 60000) : null;
    field(card, "opens_at").value = local ? local.toISOString().slice(0, 19) : "";
  }
}

function chart(card, atMs, total, measured) {
  const h = card.history;
  if (!h.length || h[h.length - 1][0] < atMs) h.push([atMs, total]);
  while (h.length && h[0][0] < atMs - HISTORY_MS) h.shift();
  const points = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i][0] - h[i - 1][0]) / 1000;
    if (dt > 0) points.push([h[i][0], Math.max(0, (h[i][1] - h[i - 1][1]) / dt)]);
  }
  const latest = points.length ? points[points.length - 1][1] : 0;
  text(field(card, "rate"), rate(measured ?? latest));
  const canvas = field(card, "chart");
  const peak = Math.max(1, ...points.map((p) => p[1]));
  canvas.setAttribute("aria-label", `Admitted per second over the last 5 minutes: now ${rate(latest)}, peak ${rate(peak)}`);
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 18;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#5b6475";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(rate(peak), 4, 12);
  ctx.strokeStyle = "#d9dee7";
  ctx.beginPath();
  ctx.moveTo(0, pad); ctx.lineTo(W, pad); ctx.moveTo(0, H - 1); ctx.lineTo(W, H - 1);
  ctx.stroke();
  if (!points.length) return;
  ctx.strokeStyle = "#3b4cca";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach(([ms, r], i) => {
    const x = W - ((atMs - ms) / HISTORY_MS) * W;
    const y = H - 1 - (r / peak) * (H - pad - 1);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

function proposal(card) {
  return { admit_rate: Number(field(card, "admit_rate").value),
           max_active: Number(field(card, "max_active").value) };
}

function explain(out) {
  const p = out.proposed, n = out.now, lines = [];
  if (out.sold_out) lines.push(["Sold out: nobody is admitted until seats come back.", "bad"]);
  else if (out.paused) lines.push(["Admission is paused: these figures count from when it resumes."]);
  if (p.max_active_full) lines.push(["Max active is reached: nobody is admitted until someone leaves.", "bad"]);
  lines.push([`At ${rate(p.rate)} the ${num(out.waiting)} waiting drain in ${wait(p.drain_seconds)} ` +
              `(now ${wait(n.drain_seconds)}).`]);
  lines.push([`The middle of the line would wait ${wait(p.median_eta_seconds)} (now ${wait(n.median_eta_seconds)}); ` +
              `the last ${wait(p.last_eta_seconds)} (now ${wait(n.last_eta_seconds)}).`]);
  if (out.seats_left == null) {
    lines.push(["The seats left could not be counted."]);
  } else {
    const per = `${out.seats_per_buyer} seats per person admitted (${out.seats_per_buyer_measured ? "measured" : "until measured"})`;
    lines.push(out.seats_run_out_first && out.buyers_left === 0
      ? [`Seats run out before the queue does: the ${num(out.seats_left)} seats left, at ${per}, are spoken ` +
         `for by the ${num(out.active)} people admitted; nobody waiting would get one.`, "bad"]
      : out.seats_run_out_first
      ? [`Seats run out before the queue does: ${num(out.seats_left)} seats left at ${per} serve ` +
         `${num(out.buyers_left)} more people; from place ${num(out.runs_out_at_position)} on, ` +
         "people would wait for nothing" +
         (out.runs_out_in_seconds == null ? "." : ` (${wait(out.runs_out_in_seconds)} after admitting starts).`), "bad"]
      : [`The ${num(out.seats_left)} seats left, at ${per}, serve ${num(out.buyers_left)} more people: ` +
         "enough for everyone waiting."]);
  }
  return lines.map(([s, cls]) => {
    const para = document.createElement("p");
    para.textContent = s;
    if (cls) para.className = cls;
    return para;
  });
}

function wire(card) {
  const form = field(card, "form"), box = field(card, "whatif"), apply = field(card, "apply");
  const message = (m, kind) => notice(field(card, "message"), m, kind);
  const failed = (e) => message(e.status === 401 ? "The admin key was refused." : e.message, "bad");
  const path = `/admin/concerts/${card.id}`;
  const changed = () => {
    card.dirty = true;
    card.previewed = null;
    apply.disabled = true;
    box.replaceChildren();
  };
  for (const name of ["admit_rate", "max_active", "mode"]) field(card, name).addEventListener("input", changed);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wanted = proposal(card);
    try {
      const out = await api("POST", `${path}/what-if`, { token: key(), body: wanted, patient: false });
      box.replaceChildren(...explain(out));
      card.previewed = JSON.stringify(wanted);
      apply.disabled = false;
      message("");
    } catch (err) { failed(err); }
  });
  apply.addEventListener("click", async () => {
    const wanted = proposal(card);
    if (card.previewed !== JSON.stringify(wanted)) return;
    try {
      await api("PATCH", `${path}/queue`, { token: key(), patient: false,
        body: { ...wanted, admission_mode: field(card, "mode").value } });
      card.dirty = false;
      card.previewed = null;
      apply.disabled = true;
      box.replaceChildren();
      message(`Applied: ${rate(wanted.admit_rate)}, at most ${num(wanted.max_active)} active.`, "ok");
    } catch (err) { failed(err); }
  });
  const patch = async (body, done) => {
    try {
      await api("PATCH", `${path}/queue`, { token: key(), body, patient: false });
      message(done, "ok");
    } catch (err) { failed(err); }
  };
  field(card, "pause").addEventListener("click", () => {
    const pause = !card.queue?.paused;
    patch({ paused: pause }, pause ? "Admission paused." : "Admission resumed.");
  });
  field(card, "set_opens").addEventListener("click", () => {
    const v = field(card, "opens_at").value;
    if (v) patch({ opens_at: new Date(v).toISOString().replace(/\.\d+Z$/, "Z") }, "Opening time set.");
  });
  field(card, "clear_opens").addEventListener("click", () => patch({ opens_at: null }, "Opening time cleared."));
}

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("#key").value.trim());
  $("#key").value = "";
  start();
});
$("#forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  const ws = socket;
  socket = null;
  ws?.close();
  cards.clear();
  $("#concerts").replaceChildren();
  text($("#live"), "Not connected");
  $("#live").classList.remove("on");
  showKeyForm("");
});

if (key()) start(); else showKeyForm("");

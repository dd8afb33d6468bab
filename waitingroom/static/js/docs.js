// The API docs page: renders /api/v1/openapi.json, with an example for every body.
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};

// Ids go up to 2^63 - 1, past what a JavaScript number holds exactly: integers that a number would
// round are kept as BigInt, from their source text (JSON.parse's reviver context), or, where a
// browser has no such context, from the text itself (big integer literals outside strings are
// quoted with a marker first).
const BIG = "\u0000big:";
function parseSpec(text) {
  const exact = (v) => typeof v === "number" && !Number.isSafeInteger(v) && Number.isInteger(v);
  let hasSource = false;
  JSON.parse("1", (k, v, ctx) => { hasSource = !!(ctx && ctx.source); return v; });
  if (hasSource) {
    return JSON.parse(text, (k, v, ctx) => (exact(v) && /^-?\d+$/.test(ctx.source) ? BigInt(ctx.source) : v));
  }
  const quoted = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g,
    (m) => (m[0] === '"' ? m : `"${BIG}${m}"`));
  return JSON.parse(quoted, (k, v) => (typeof v === "string" && v.startsWith(BIG) ? BigInt(v.slice(BIG.length)) : v));
}

// Prose with `backticks` shows them as code.
function prose(text) {
  const f = document.createDocumentFragment();
  String(text || "").split("`").forEach((part, i) => {
    if (part) f.append(i % 2 ? el("code", {}, part) : part);
  });
  return f;
}

let components = {};
const resolve = (s) => (s && s.$ref ? components[s.$ref.split("/").pop()] : s);

// A schema as a short type expression, with links to named components.
function typeOf(s) {
  if (!s) return "any";
  if (s.$ref) {
    const name = s.$ref.split("/").pop();
    return el("a", {href: "#schema-" + name}, name);
  }
  if (s.allOf) return typeOf(s.allOf[0]);  // a problem: the Problem type, its codes listed
  const span = el("span");
  const union = s.anyOf || s.oneOf;
  if (union) {
    union.forEach((u, i) => { if (i) span.append(" | "); span.append(typeOf(u)); });
    return span;
  }
  if (s.type === "array") { span.append("[", typeOf(s.items), "]"); return span; }
  if (s.enum) return s.enum.map(v => JSON.stringify(v)).join(" | ");
  let text = s.type || "object";
  const limits = [];
  for (const [k, sym] of [["minimum", "≥"], ["maximum", "≤"], ["minLength", "len ≥"],
                          ["maxLength", "len ≤"], ["minItems", "items ≥"], ["maxItems", "items ≤"]]) {
    if (s[k] !== undefined) limits.push(sym + " " + String(s[k]));
  }
  if (limits.length) text += " (" + limits.join(", ") + ")";
  return text;
}

// A small, plausible example of a schema; `name` is the field it is for (a hint at its meaning).
const NAMED = {
  token: "7b0c2f4e-5a1d-4c36-9e0b-2d8f6a1c3e57", identity: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln",
  name: "Aurora Live", host: "Seoul Arena", code: "seat_unavailable", title: "Conflict",
  detail: "Seat 3 is not on sale", type: "about:blank", ws_url: "ws://127.0.0.1:8080/ws/queue?token=7b0c…",
  position: 42, eta_seconds: 5, seat_number: 3, quantity: 2, status: 409, amount: 100000, price: 100000,
  total_price: 200000, balance: 150000, price_min: 80000, price_max: 120000, available_seats: 48,
  waiting: 1200, active: 35, admit_rate: 10, max_active: 1000,
};
function example(schema, name = "", depth = 0) {
  const s = resolve(schema) || {};
  if (depth > 6) return null;
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.example !== undefined) return s.example;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  if (s.type === "object" || s.properties) {
    // "Exactly one of": keep the first alternative's fields, leave out the others'.
    const choices = (s.oneOf || []).filter((c) => Array.isArray(c.required));
    const others = new Set(choices.slice(1).flatMap((c) => c.required));
    (choices[0] ? choices[0].required : []).forEach((k) => others.delete(k));
    const o = {};
    for (const [k, p] of Object.entries(s.properties || {})) {
      if (!others.has(k)) o[k] = example(p, k, depth + 1);
    }
    return o;
  }
  const union = s.anyOf || s.oneOf;
  if (union) return example(union.find((u) => u.type !== "null") || union[0], name, depth + 1);
  if (s.type === "array") return [example(s.items, name.replace(/s$/, ""), depth + 1)];
  if (s.type === "boolean") return false;
  if (s.type === "null") return null;
  if (s.type === "string") {
    if (s.format === "date-time" || /_at$/.test(name)) return "2026-12-24T19:10:00Z";
    if (s.format === "date" || /date$/.test(name)) return "2026-12-24";
    return typeof NAMED[name] === "string" ? NAMED[name] : "string";
  }
  if (s.type === "integer" || s.type === "number") {
    let n = typeof NAMED[name] === "number" ? NAMED[name] : /(^|_)id$/.test(name) ? 7 : 1;
    if (s.minimum !== undefined && n < Number(s.minimum)) n = Number(s.minimum);
    if (s.maximum !== undefined && n > Number(s.maximum)) n = Number(s.maximum);
    return n;
  }
  return null;
}
const exampleBlock = (schema, open = false) =>
  el("details", {class: "example", ...(open ? {open: ""} : {})}, el("summary", {}, "Example"),
     el("pre", {}, JSON.stringify(example(schema), null, 2)));

function schemaTable(s) {
  if (!s.properties) return el("div", {}, typeOf(s));
  const t = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
                                el("th", {}, "")));
  const required = new Set(s.required || []);
  for (const [name, p] of Object.entries(s.properties)) {
    t.append(el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, typeOf(p)),
                el("td", {}, required.has(name) ? "required. " : "optional. ", prose(p.description))));
  }
  return el("div", {class: "scroll"}, t);
}

function operation(path, method, op) {
  const body = el("div", {class: "body"});
  if (op.description) body.append(el("p", {}, prose(op.description)));
  body.append(el("p", {class: "lock"}, op.security && op.security.length
    ? "Authorization: Bearer <" + Object.keys(op.security[0])[0] + ">" : "No authorization"));
  if (op.parameters) {
    const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
                                  el("th", {}, "type")));
    for (const p of op.parameters) {
      t.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
                  el("td", {}, typeOf(p.schema), p.description ? " — " : "", prose(p.description))));
    }
    body.append(el("div", {class: "scroll"}, t));
  }
  if (op.requestBody) {
    const schema = op.requestBody.content["application/json"].schema;
    body.append(el("h3", {}, "Request body"), el("p", {}, typeOf(schema)), exampleBlock(schema, true));
  }
  body.append(el("h3", {}, "Responses"));
  const t = el("table");
  let shown = null;
  for (const [status, r] of Object.entries(op.responses)) {
    const content = r.content && Object.values(r.content)[0];
    t.append(el("tr", {}, el("td", {}, el("b", {}, status)),
                el("td", {}, content ? typeOf(content.schema) : "empty"),
                el("td", {}, prose(r.description))));
    if (!shown && content && /^[12]/.test(status)) shown = content.schema;
  }
  body.append(el("div", {class: "scroll"}, t));
  if (shown) body.append(exampleBlock(shown, true));
  return el("details", {class: "op"},
            el("summary", {}, el("span", {class: "method " + method}, method),
               el("span", {class: "path"}, path), el("span", {class: "summary"}, op.summary || "")),
            body);
}

fetch("/api/v1/openapi.json").then(r => r.text()).then(parseSpec).then(spec => {
  components = spec.components.schemas;
  document.getElementById("title").textContent = spec.info.title + " API";
  document.getElementById("intro").replaceChildren(prose(spec.info.description));
  const byTag = new Map();
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op));
    }
  }
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [tag, items] of byTag) ops.append(el("h2", {}, tag), ...items);
  const schemas = document.getElementById("schemas");
  for (const [name, s] of Object.entries(components)) {
    schemas.append(el("h3", {id: "schema-" + name}, name),
                   s.description ? el("p", {}, prose(s.description)) : "", schemaTable(s), exampleBlock(s));
  }
}).catch(e => { document.getElementById("ops").textContent = "Could not load the spec: " + e; });

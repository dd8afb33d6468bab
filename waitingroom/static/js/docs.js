// The API docs page: renders /api/v1/openapi.json.
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};

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
    if (s[k] !== undefined) limits.push(sym + " " + s[k]);
  }
  if (limits.length) text += " (" + limits.join(", ") + ")";
  return text;
}

function schemaTable(s) {
  if (!s.properties) return el("div", {}, typeOf(s));
  const t = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
                                el("th", {}, "")));
  const required = new Set(s.required || []);
  for (const [name, p] of Object.entries(s.properties)) {
    t.append(el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, typeOf(p)),
                el("td", {}, (required.has(name) ? "required. " : "optional. ") +
                             (p.description || ""))));
  }
  return t;
}

function operation(path, method, op) {
  const body = el("div", {class: "body"});
  if (op.description) body.append(el("p", {}, op.description));
  body.append(el("p", {class: "lock"}, op.security && op.security.length
    ? "Authorization: Bearer <" + Object.keys(op.security[0])[0] + ">" : "No authorization"));
  if (op.parameters) {
    const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
                                  el("th", {}, "type")));
    for (const p of op.parameters) {
      t.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
                  el("td", {}, typeOf(p.schema), p.description ? " — " + p.description : "")));
    }
    body.append(t);
  }
  if (op.requestBody) {
    body.append(el("h4", {}, "Request body"),
                typeOf(op.requestBody.content["application/json"].schema));
  }
  body.append(el("h4", {}, "Responses"));
  const t = el("table");
  for (const [status, r] of Object.entries(op.responses)) {
    const content = r.content && Object.values(r.content)[0];
    t.append(el("tr", {}, el("td", {}, el("b", {}, status)),
                el("td", {}, content ? typeOf(content.schema) : "empty"),
                el("td", {}, r.description || "")));
  }
  body.append(t);
  return el("details", {class: "op"},
            el("summary", {}, el("span", {class: "method " + method}, method),
               el("span", {class: "path"}, path), el("span", {}, op.summary || "")),
            body);
}

fetch("/api/v1/openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("title").textContent = spec.info.title + " API";
  document.getElementById("intro").textContent = spec.info.description || "";
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
  for (const [name, s] of Object.entries(spec.components.schemas)) {
    schemas.append(el("h3", {id: "schema-" + name}, name),
                   s.description ? el("p", {}, s.description) : "", schemaTable(s));
  }
}).catch(e => { document.getElementById("ops").textContent = "Could not load the spec: " + e; });

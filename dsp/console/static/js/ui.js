// Small DOM and formatting helpers. Every text goes in through textContent: names typed by
// advertisers are never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const svgNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

// A labelled form control: <div class="field"><label for=..>..</label><input id=..></div>.
export function field(label, control, hint) {
  control.id = control.id || nextId("f");
  const hintEl = hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const cents = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 4 });
const int = new Intl.NumberFormat("en-US");
export const money = (micros) => usd.format((micros || 0) / 1e6);
export const dollars = (value) => (value && Math.abs(value) < 0.1 ? cents : usd).format(value || 0);
export const count = (n) => int.format(n || 0);
export const percent = (x, digits = 2) => `${((x || 0) * 100).toFixed(digits)}%`;
export const toMicros = (text) => Math.round(parseFloat(text) * 1e6);
export const fromMicros = (micros) => (micros === undefined ? "" : String(micros / 1e6));

// The Wilson score interval of clicks/impressions at 95 %: what the report shows when the
// server does not send ctr_low / ctr_high itself.
export function wilson(clicks, impressions, z = 1.959964) {
  if (!impressions) return [0, 0];
  const p = clicks / impressions;
  const z2 = z * z;
  const denom = 1 + z2 / impressions;
  const centre = (p + z2 / (2 * impressions)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / impressions + z2 / (4 * impressions ** 2))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

export function interval(row) {
  if (typeof row.ctr_low === "number" && typeof row.ctr_high === "number") {
    return [row.ctr_low, row.ctr_high];
  }
  return wilson(row.clicks, row.impressions);
}

export function announce(text, kind = "info") {
  const region = document.getElementById("status");
  region.className = `status ${kind}`;
  region.textContent = text;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => {
    region.textContent = "";
    region.className = "status";
  }, 6000);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

// Two small SVG charts, drawn without a library: CTR over time with its interval band, and
// horizontal bars with interval whiskers.
import { percent, s } from "./ui.js";

export function ctrOverTime(points, { width = 900, height = 240 } = {}) {
  const pad = { left: 56, right: 16, top: 14, bottom: 30 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `CTR over time, ${points.length} points, with its 95% interval` });
  if (!points.length) return svg;
  const top = Math.max(...points.map((p) => p.high), 0.0001) * 1.1;
  const x = (i) => pad.left + (points.length === 1 ? 0.5 : i / (points.length - 1)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "gridline" }),
      s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, percent(v, 2)));
  }
  const band = points.map((p, i) => `${x(i)},${y(p.high)}`).concat(points.map((p, i) => `${x(i)},${y(p.low)}`).reverse());
  svg.append(s("polygon", { points: band.join(" "), class: "band" }));
  svg.append(s("polyline", { points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" "), class: "line" }));
  const step = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    svg.append(s("line", { x1: x(i), x2: x(i), y1: y(p.low), y2: y(p.high), class: "errbar" }));
    svg.append(s("circle", { cx: x(i), cy: y(p.value), r: 3, class: "dot" },
      s("title", {}, `${p.label}: ${percent(p.value)} (95% ${percent(p.low)}–${percent(p.high)}), ${p.impressions} impressions`)));
    if (i % step === 0) svg.append(s("text", { x: x(i), y: height - 8, "text-anchor": "middle", class: "axis" }, p.label));
  });
  return svg;
}

// rows: [{label, value, low?, high?, note?}], value in 0..1 (or any positive with format).
export function bars(rows, { format = percent, width = 900, max = null } = {}) {
  const rowH = 24;
  const labelW = 260;
  const height = rows.length * rowH + 8;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img", "aria-label": "Bar chart" });
  const top = max ?? Math.max(...rows.map((r) => r.high ?? r.value), 0.0001) * 1.05;
  const right = rows.some((r) => r.note) ? 230 : 90;  // room for the value written after a bar
  const x = (v) => labelW + (Math.min(v, top) / top) * (width - labelW - right);
  rows.forEach((r, i) => {
    const cy = i * rowH + rowH / 2 + 4;
    svg.append(s("text", { x: labelW - 8, y: cy + 4, "text-anchor": "end", class: "axis" }, r.label),
      s("rect", { x: labelW, y: cy - 8, width: Math.max(1, x(r.value) - labelW), height: 16, class: "bar" }));
    if (r.low !== undefined) {
      svg.append(s("line", { x1: x(r.low), x2: x(r.high), y1: cy, y2: cy, class: "whisker" }));
    }
    svg.append(s("text", { x: Math.max(x(r.value), r.high !== undefined ? x(r.high) : 0) + 6, y: cy + 4, class: "axis" }, r.note ?? format(r.value)));
  });
  return svg;
}

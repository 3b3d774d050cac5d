// A line chart in SVG: events in and out per second over a time span.

import { h, svg } from "./dom.js";

const WIDTH = 420;
const HEIGHT = 170;
const PAD = { left: 40, right: 10, top: 10, bottom: 24 };

/** A round upper bound for the y axis. */
function ceiling(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 4, 8, 10].map((step) => step * magnitude).find((bound) => bound >= value);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
}

/**
 * A chart of `lines` ({className, label, points: [[ms, value]]}) from
 * `from` to `to` (ms since the epoch), titled `title`.
 */
export function lineChart(title, lines, from, to) {
  const inner = { width: WIDTH - PAD.left - PAD.right, height: HEIGHT - PAD.top - PAD.bottom };
  const top = ceiling(Math.max(0, ...lines.flatMap((line) => line.points.map(([, value]) => value))));
  const x = (ms) => PAD.left + ((ms - from) / (to - from)) * inner.width;
  const y = (value) => PAD.top + inner.height - (value / top) * inner.height;
  const parts = [];
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (top * tick) / 4;
    parts.push(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }));
    parts.push(svg("text", { x: PAD.left - 6, y: y(value) + 3, "text-anchor": "end" }, formatTick(value)));
  }
  for (let tick = 0; tick <= 4; tick += 1) {
    const ms = from + ((to - from) * tick) / 4;
    parts.push(svg("text", { x: x(ms), y: HEIGHT - 6, "text-anchor": tick === 0 ? "start" : tick === 4 ? "end" : "middle" }, clock(ms)));
  }
  parts.push(svg("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + inner.height }));
  parts.push(svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + inner.height, y2: PAD.top + inner.height }));
  for (const line of lines) {
    const shown = line.points.filter(([ms]) => ms >= from && ms <= to);
    if (!shown.length) continue;
    const path = shown.map(([ms, value], index) => `${index ? "L" : "M"}${x(ms).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    parts.push(svg("path", { class: line.className, d: path }, svg("title", {}, line.label)));
  }
  const label = `${title}: ${lines.map((line) => `${line.label} now ${formatTick(line.points.at(-1)?.[1] ?? 0)} per second`).join(", ")}`;
  return h("figure", { class: "card chart" },
    h("h3", {}, title),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label }, parts),
    h("div", { class: "legend" }, lines.map((line) =>
      h("span", {}, h("span", { class: `swatch ${line.className}` }), line.label))));
}

function formatTick(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  return String(Number(value.toFixed(2)));
}

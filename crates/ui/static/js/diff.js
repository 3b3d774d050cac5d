// A line diff of two texts, shown as a unified diff with context.

import { h } from "./dom.js";

/** The lines of `before` and `after` as kept (" "), removed ("-") or added ("+"). */
function diffLines(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  // common[i][j]: the longest common subsequence of a[i..] and b[j..].
  const common = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push({ kind: " ", text: a[i] });
      i += 1;
      j += 1;
    } else if (i < a.length && (j >= b.length || common[i + 1][j] >= common[i][j + 1])) {
      lines.push({ kind: "-", text: a[i] });
      i += 1;
    } else {
      lines.push({ kind: "+", text: b[j] });
      j += 1;
    }
  }
  return lines;
}

/** A unified diff of `before` and `after` with `context` lines around each change. */
export function diffView(before, after, context = 3) {
  const lines = diffLines(before, after);
  const changed = lines.map((line) => line.kind !== " ");
  if (!changed.includes(true)) return h("p", { class: "muted" }, "No change.");
  const near = lines.map((_, index) =>
    changed.slice(Math.max(0, index - context), index + context + 1).includes(true));
  const rows = [];
  let skipped = 0;
  lines.forEach((line, index) => {
    if (!near[index]) {
      skipped += 1;
      return;
    }
    if (skipped) rows.push(h("div", { class: "gap" }, `… ${skipped} unchanged line(s)`));
    skipped = 0;
    const tone = { "+": "add", "-": "del", " ": "" }[line.kind];
    rows.push(h("div", { class: tone }, `${line.kind} ${line.text}`));
  });
  if (skipped) rows.push(h("div", { class: "gap" }, `… ${skipped} unchanged line(s)`));
  const added = lines.filter((line) => line.kind === "+").length;
  const removed = lines.filter((line) => line.kind === "-").length;
  return h("div", {},
    h("p", { class: "muted" }, `${added} line(s) added, ${removed} removed.`),
    h("pre", { class: "diff", "aria-label": "Changes" }, rows));
}

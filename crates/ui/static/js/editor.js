// A plain-text JSON editor: a textarea with line numbers, and marked lines
// (the lines that validation errors concern).

import { h } from "./dom.js";

const LINE_PX = 20;

/** An editor holding `text`, labelled `label`; `onInput` is called on each change. */
export function createEditor(text, label, onInput = () => {}) {
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const layer = h("div", { class: "layer", "aria-hidden": "true" });
  const textarea = h("textarea", { id: "document", spellcheck: "false", autocomplete: "off", "aria-label": label, wrap: "off" });
  textarea.value = text;
  const element = h("div", { class: "editor" }, gutter, h("div", { class: "pane" }, layer, textarea));
  let marked = new Set();

  const draw = () => {
    const count = textarea.value.split("\n").length;
    const numbers = [];
    const rows = [];
    for (let line = 1; line <= count; line += 1) {
      const mark = marked.has(line) ? "marked" : null;
      numbers.push(h("div", { class: mark, "data-line": line }, line));
      rows.push(h("div", { class: mark }));
    }
    gutter.replaceChildren(...numbers);
    layer.replaceChildren(...rows);
    scroll();
  };
  const scroll = () => {
    gutter.scrollTop = textarea.scrollTop;
    layer.style.transform = `translateY(${-textarea.scrollTop}px)`;
  };
  textarea.addEventListener("scroll", scroll);
  textarea.addEventListener("input", () => {
    draw();
    onInput();
  });
  draw();

  return {
    element,
    textarea,
    get value() {
      return textarea.value;
    },
    set value(next) {
      textarea.value = next;
      draw();
    },
    /** Marks these line numbers (1-based), and only these. */
    mark(lines) {
      marked = new Set(lines);
      draw();
    },
    /** Selects line `line`, scrolls it into view and focuses the editor. */
    focusLine(line) {
      const lines = textarea.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
      textarea.focus();
      textarea.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
      textarea.scrollTop = Math.max(0, (line - 1) * LINE_PX - textarea.clientHeight / 3);
      scroll();
    },
  };
}

// Building the page: an element helper, formatting, dialogs and toasts.

/**
 * An element: `h("a", {href: "#/"}, "text", child)`. Attributes starting
 * with `on` are listeners; `class`, `hidden`, `disabled` and the like are
 * set as attributes; false and null ones are left out.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** An SVG element with attributes and children. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

/** Replaces the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A state word as a coloured badge. */
export function badge(text, tone = text) {
  return h("span", { class: `badge ${tone}` }, text);
}

/** A table with a header row and body rows (arrays of cells). */
export function table(headers, rows, { empty = "Nothing here yet.", className = "" } = {}) {
  const head = h("tr", {}, headers.map((title) => {
    const numeric = title.startsWith("#");
    return h("th", { class: numeric ? "num" : null, scope: "col" }, numeric ? title.slice(1) : title);
  }));
  const body = rows.length
    ? rows
    : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, empty))];
  return h("table", { class: className }, h("thead", {}, head), h("tbody", {}, body));
}

/** How long ago an RFC 3339 time was, in words. */
export function ago(time) {
  if (!time) return "never";
  const secs = Math.max(0, (Date.now() - Date.parse(time)) / 1000);
  if (secs < 60) return `${Math.round(secs)} s ago`;
  if (secs < 3600) return `${Math.round(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

/** An RFC 3339 time in the browser's locale, to the second. */
export function when(time) {
  return time ? new Date(time).toLocaleString(undefined, { hour12: false }) : "—";
}

/** Bytes in KiB, MiB or GiB. */
export function bytes(count) {
  if (count === null || count === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** A rate per second, short. */
export function rate(value) {
  if (value === null || value === undefined) return "—";
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k/s`;
  return `${value >= 10 || value === 0 ? Math.round(value) : value.toFixed(1)}/s`;
}

/** Shows a short message in the corner for a few seconds. */
export function toast(message, tone = "") {
  const note = h("div", { class: tone }, message);
  document.getElementById("toast").append(note);
  setTimeout(() => note.remove(), 5000);
}

/**
 * Opens a modal dialog with `title`, `body` and buttons; answers the value
 * of the button pressed, or null when dismissed (Escape, Cancel).
 */
export function dialog(title, body, buttons, { narrow = false } = {}) {
  return new Promise((resolve) => {
    const actions = buttons.map(({ label, value, tone = "" }) =>
      h("button", { type: "submit", value, class: tone }, label));
    const form = h("form", { method: "dialog" },
      h("h2", {}, title), body,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => box.close("") }, "Cancel"),
        actions));
    const box = h("dialog", { class: narrow ? "narrow" : "", "aria-label": title }, form);
    // Enter in a field chooses the main action, the last button.
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.tagName === "INPUT") {
        event.preventDefault();
        box.close(buttons.at(-1).value);
      }
    });
    box.addEventListener("close", () => {
      box.remove();
      resolve(box.returnValue || null);
    });
    document.body.append(box);
    box.showModal();
    (actions.at(-1) ?? box).focus();
  });
}

/** Asks to confirm an action; true when confirmed. */
export async function confirmAction(title, text, label, tone = "danger") {
  return (await dialog(title, h("p", {}, text), [{ label, value: "yes", tone }], { narrow: true })) === "yes";
}

/** A message for an error, with the API's message when there is one. */
export function failure(error) {
  return h("p", { class: "error-text", role: "alert" }, error.message || String(error));
}

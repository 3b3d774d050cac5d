// The event sets' search page: a query over one set and a time range,
// newest first, a page at a time; each event expands to its JSON.

import { enc, get } from "./api.js";
import { bytes, failure, fill, h, table, when } from "./dom.js";

const RANGES = [["-15m", "Last 15 minutes"], ["-1h", "Last hour"], ["-6h", "Last 6 hours"], ["-24h", "Last 24 hours"], ["-7d", "Last 7 days"], ["", "All time"]];

function summary(event) {
  if (typeof event.message === "string") return event.message;
  const { timestamp, host, ...rest } = event;
  return JSON.stringify(rest);
}

function eventRows(events) {
  return events.flatMap((event, index) => {
    const detail = h("tr", { class: "detail", hidden: true }, h("td", { colspan: 4 }, h("pre", {}, JSON.stringify(event, null, 2))));
    const toggle = h("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-label": `Show event ${index + 1}`, onclick: () => {
      detail.hidden = !detail.hidden;
      toggle.setAttribute("aria-expanded", String(!detail.hidden));
      toggle.textContent = detail.hidden ? "Show" : "Hide";
    } }, "Show");
    const summaryText = summary(event);
    return [h("tr", { class: "event" },
      h("td", {}, toggle),
      h("td", { class: "time" }, when(event.timestamp)),
      h("td", {}, event.host ?? ""),
      h("td", { class: "summary" }, summaryText.length > 240 ? `${summaryText.slice(0, 240)}…` : summaryText)), detail];
  });
}

/** The event search page. */
export async function eventsPage(view) {
  const sets = await get("/event_sets");
  const set = h("select", { id: "set", name: "set", required: true },
    sets.map((one) => h("option", { value: one.name }, `${one.name} (${one.events} events, ${bytes(one.size_bytes)})`)));
  const query = h("input", { type: "search", id: "query", name: "q", size: 36, placeholder: "words and field:value, e.g. host:worker1 error" });
  const from = h("select", { id: "from", name: "from" }, RANGES.map(([value, label]) => h("option", { value }, label)));
  from.value = "-1h";
  const to = h("input", { type: "text", id: "to", name: "to", size: 16, placeholder: "now" });
  const limit = h("select", { id: "limit", name: "limit" }, [20, 50, 100, 500].map((n) => h("option", { value: n }, n)));
  limit.value = "50";
  const results = h("div", { id: "results", "aria-live": "polite" });
  let pages = [];

  const search = async (cursor) => {
    const params = new URLSearchParams({ limit: limit.value });
    if (query.value.trim()) params.set("q", query.value.trim());
    if (from.value) params.set("from", from.value);
    if (to.value.trim()) params.set("to", to.value.trim());
    if (cursor) params.set("cursor", cursor);
    fill(results, h("p", { class: "muted" }, "Searching…"));
    try {
      const page = await get(`/event_sets/${enc(set.value)}/events?${params}`);
      const number = pages.length;
      const next = page.next_cursor
        ? h("button", { type: "button", id: "next-page", onclick: () => { pages.push(page.next_cursor); search(page.next_cursor); } }, "Next page")
        : null;
      const first = number ? h("button", { type: "button", class: "secondary", onclick: () => { pages = []; search(); } }, "First page") : null;
      fill(results,
        h("div", { class: "toolbar" }, h("strong", {}, page.events.length ? `Page ${number + 1}: ${page.events.length} event(s), newest first` : "No event matches."), first, next),
        page.events.length ? table(["", "Time", "Host", "Event"], eventRows(page.events), { className: "events" }) : null);
    } catch (error) {
      fill(results, failure(error));
    }
  };

  const form = h("form", { class: "inline", id: "search", onsubmit: (event) => {
    event.preventDefault();
    pages = [];
    search();
  } },
    h("div", { class: "field" }, h("label", { for: "set" }, "Event set"), set),
    h("div", { class: "field" }, h("label", { for: "query" }, "Query"), query),
    h("div", { class: "field" }, h("label", { for: "from" }, "From"), from),
    h("div", { class: "field" }, h("label", { for: "to" }, "To"), to),
    h("div", { class: "field" }, h("label", { for: "limit" }, "Per page"), limit),
    h("button", { type: "submit" }, "Search"));

  fill(view.main,
    h("div", { class: "page-head" }, h("h1", {}, "Event sets")),
    sets.length
      ? h("section", { class: "card" }, form, h("p", { class: "muted small" }, "Times are RFC 3339 (2026-11-23T10:00:00Z) or relative to now (-15m, -2h, -7d)."))
      : h("section", { class: "card" }, h("p", { class: "muted" }, "No event set yet. A dataflow's yh sink, or POST /api/v1/event_sets/NAME/events, creates one.")),
    h("section", { class: "card" }, results));
  if (sets.length) {
    query.focus();
    await search();
  }
}

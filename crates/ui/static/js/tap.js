// The live tap page: pick a component of a dataflow and watch its events
// arrive from every worker that runs it, newest on top, through the
// manager's stream of server-sent events.

import { enc, get, savedToken } from "./api.js";
import { failure, fill, h, table, when } from "./dom.js";

/** Rows kept on the page; older ones drop off the bottom. */
const KEPT = 200;

const RATES = [1, 5, 10, 50, 100];

/** Calls `each` with the data of every server-sent event of `response`. */
async function readEvents(response, each) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
      if (data) each(JSON.parse(data));
    }
  }
}

function eventRow(tapped) {
  const { event, worker } = tapped;
  const text = typeof event.message === "string" ? event.message : JSON.stringify(event);
  return h("tr", { class: "tapped" },
    h("td", { class: "time" }, when(event.timestamp)),
    h("td", {}, worker),
    h("td", { class: "summary" }, h("code", {}, text.length > 300 ? `${text.slice(0, 300)}…` : text)));
}

/** The live tap page; `#/tap/GROUP/DATAFLOW` starts with that dataflow chosen. */
export async function tapPage(view) {
  const groups = await get("/groups");
  const group = h("select", { id: "tap-group", name: "group" }, groups.map((one) => h("option", { value: one.name }, one.name)));
  const dataflow = h("select", { id: "tap-dataflow", name: "dataflow" });
  const component = h("select", { id: "tap-component", name: "component" });
  const rate = h("select", { id: "tap-rate", name: "rate" }, RATES.map((n) => h("option", { value: n }, `${n} a second`)));
  rate.value = "10";
  const start = h("button", { type: "submit", id: "tap-start" }, "Start");
  const stop = h("button", { type: "button", id: "tap-stop", class: "secondary", disabled: true }, "Stop");
  const status = h("p", { id: "tap-status", class: "muted", role: "status" }, "Pick a component and start.");
  const rows = h("tbody", { id: "tap-events" });
  let watching = null;

  const components = async () => {
    fill(component);
    if (!dataflow.value) return;
    const stored = await get(`/groups/${enc(group.value)}/dataflows/${enc(dataflow.value)}`);
    const document = stored.document ?? {};
    for (const kind of ["sources", "pipelines", "sinks"]) {
      const names = (document[kind] ?? []).map((one) => one.name);
      if (names.length) component.append(h("optgroup", { label: kind }, names.map((name) => h("option", { value: name }, name))));
    }
  };
  const dataflows = async (chosen) => {
    fill(dataflow);
    if (!group.value) return;
    const listed = await get(`/groups/${enc(group.value)}/dataflows`);
    dataflow.append(...listed.map((one) => h("option", { value: one.name }, one.name)));
    if (chosen && listed.some((one) => one.name === chosen)) dataflow.value = chosen;
    await components();
  };

  const halt = (message) => {
    watching?.abort();
    watching = null;
    start.disabled = false;
    stop.disabled = true;
    if (message) status.textContent = message;
  };

  const begin = async () => {
    halt();
    fill(rows);
    const path = `/groups/${enc(group.value)}/dataflows/${enc(dataflow.value)}/components/${enc(component.value)}/tap?rate=${rate.value}`;
    const controller = new AbortController();
    watching = controller;
    start.disabled = true;
    stop.disabled = false;
    const what = `${group.value}/${dataflow.value}/${component.value}`;
    status.textContent = `Watching ${what}: waiting for events…`;
    let count = 0;
    try {
      const response = await fetch(`/api/v1${path}`, {
        headers: { Authorization: `Bearer ${savedToken()}`, Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message ?? `the manager answered ${response.status}`);
      }
      await readEvents(response, (tapped) => {
        count += 1;
        rows.prepend(eventRow(tapped));
        while (rows.children.length > KEPT) rows.lastElementChild.remove();
        status.textContent = `Watching ${what}: ${count} event(s) so far, at most ${rate.value} a second from each worker.`;
      });
      if (watching === controller) halt(`The stream of ${what} ended (${count} event(s)).`);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (watching === controller) halt();
      fill(status, failure(error));
    }
  };

  view.whenLeft(() => halt());
  group.addEventListener("change", () => dataflows().catch((error) => fill(status, failure(error))));
  dataflow.addEventListener("change", () => components().catch((error) => fill(status, failure(error))));
  stop.addEventListener("click", () => halt("Stopped."));

  const form = h("form", { class: "inline", id: "tap-form", onsubmit: (event) => {
    event.preventDefault();
    if (component.value) begin();
  } },
    h("div", { class: "field" }, h("label", { for: "tap-group" }, "Group"), group),
    h("div", { class: "field" }, h("label", { for: "tap-dataflow" }, "Dataflow"), dataflow),
    h("div", { class: "field" }, h("label", { for: "tap-component" }, "Component"), component),
    h("div", { class: "field" }, h("label", { for: "tap-rate" }, "At most"), rate),
    start, stop);

  // The table's body is the one events arrive in.
  const events = table(["Time", "Worker", "Event"], [], { className: "events" });
  events.tBodies[0].replaceWith(rows);
  fill(view.main,
    h("div", { class: "page-head" }, h("h1", {}, "Live tap")),
    h("section", { class: "card" }, form,
      h("p", { class: "muted small" }, "A copy of what the component puts out (a sink: takes in) on every worker that runs the dataflow. Watching never slows a dataflow down: what exceeds the rate is left out.")),
    h("section", { class: "card" }, status, events));

  const [chosenGroup, chosenDataflow] = [view.params.group, view.params.name];
  if (chosenGroup && groups.some((one) => one.name === chosenGroup)) group.value = chosenGroup;
  await dataflows(chosenDataflow);
  group.focus();
}

// A dataflow's page: the JSON editor with the server's validation errors
// on their lines, a diff before saving, the graph with event rates, and
// the revision history with restore; also the page of a new dataflow.

import { enc, get, request } from "./api.js";
import { diffView } from "./diff.js";
import { ago, badge, confirmAction, dialog, failure, fill, h, rate, table, toast, when } from "./dom.js";
import { createEditor } from "./editor.js";
import { dataflowGraph } from "./graph.js";
import { lineOf, locate } from "./jsonpath.js";
import { fleet } from "./workers.js";

const RATE_MS = 5000;

const pretty = (doc) => JSON.stringify(doc, null, 2);

function template() {
  return pretty({
    name: "new_dataflow",
    sources: [{ name: "gen", type: "demo", conf: { format: "json", interval_secs: 1 } }],
    pipelines: [],
    sinks: [{ name: "out", type: "console", inputs: ["gen"] }],
  });
}

/** The list of problems under the editor; each path selects its line. */
function problemList(problems, editor) {
  return h("ul", { class: "problems", id: "problems", "aria-label": "Problems" }, problems.map(({ path, message, line }) =>
    h("li", { "data-path": path },
      h("button", { type: "button", class: "path", onclick: () => editor.focusLine(line) }, path || "(document)"),
      h("span", { class: "line" }, `line ${line}`), ": ", message)));
}

/**
 * Event rates of a dataflow: from the counters each worker reports in its
 * heartbeats (per dataflow) and, on a standalone node, from its own
 * worker's counters (per component), each between two of its reports.
 */
class RateMeter {
  constructor(group, name) {
    this.group = group;
    this.name = name;
    this.seen = new Map();
    this.sources = new Set();
    this.sinks = new Set();
  }

  /** The rates of `counters` reported by `reporter` at `at` (ms), once it reported twice. */
  measure(reporter, at, counters) {
    const seen = this.seen.get(reporter);
    if (seen && at <= seen.at) return seen.rates;
    let rates = null;
    if (seen) {
      const secs = (at - seen.at) / 1000;
      rates = Object.fromEntries(Object.entries(counters).map(([key, value]) => {
        const before = seen.counters[key] ?? 0;
        return [key, (value >= before ? value - before : value) / secs];
      }));
    }
    this.seen.set(reporter, { at, counters, rates });
    return rates;
  }

  /** How many workers report the dataflow, and its rates by key once known. */
  async sample() {
    const { workers, local } = await fleet();
    const found = [];
    for (const worker of workers) {
      const flow = worker.status?.dataflows.find((f) => f.group === this.group && f.name === this.name);
      if (!flow || worker.state !== "online") continue;
      found.push(this.measure(worker.id, Date.parse(worker.last_heartbeat), { in: flow.events_in, out: flow.events_out }));
    }
    if (local) {
      const flow = local.dataflows.find((f) => f.group === this.group && f.name === this.name);
      if (flow) {
        const counters = { in: 0, out: 0 };
        for (const component of flow.components) {
          counters[`${component.component}:in`] = component.events_in;
          counters[`${component.component}:out`] = component.events_out;
          if (this.sources.has(component.component)) counters.in += component.events_out;
          if (this.sinks.has(component.component)) counters.out += component.events_in;
        }
        found.push(this.measure("this node", Date.now(), counters));
      }
    }
    const known = found.filter(Boolean);
    if (!known.length) return { reporting: found.length, rates: null };
    const rates = new Map();
    for (const [key, value] of known.flatMap((one) => Object.entries(one))) rates.set(key, (rates.get(key) ?? 0) + value);
    return { reporting: found.length, rates };
  }
}

/** What to show under each component: its own rates where known, else the dataflow's. */
function rateLabels(doc, rates) {
  const single = (key) => (Array.isArray(doc[key]) && doc[key].length === 1 ? doc[key][0].name : null);
  const [source, sink] = [single("sources"), single("sinks")];
  return (name) => {
    if (!rates) return null;
    const own = [rates.get(`${name}:in`), rates.get(`${name}:out`)];
    if (own.some((value) => value !== undefined)) {
      return [own[0] !== undefined ? `in ${rate(own[0])}` : null, own[1] !== undefined ? `out ${rate(own[1])}` : null].filter(Boolean).join(" · ");
    }
    if (name === source && rates.has("in")) return `out ${rate(rates.get("in"))}`;
    if (name === sink && rates.has("out")) return `in ${rate(rates.get("out"))}`;
    return null;
  };
}

/** The page of dataflow `name` in `group`, or of a new one when `name` is not given. */
export async function dataflowPage(view) {
  const { group, name } = view.params;
  const creating = name === undefined;
  let stored = null;
  let etag = null;
  if (!creating) {
    ({ data: stored, etag } = await request("GET", `/groups/${enc(group)}/dataflows/${enc(name)}`));
  }
  const base = `/groups/${enc(group)}/dataflows/${enc(name ?? "")}`;
  const saved = () => (creating ? "" : pretty(stored.document));
  const dirty = h("span", { class: "muted small", id: "dirty" });
  const editor = createEditor(creating ? template() : saved(), "Dataflow document (JSON)", () => {
    dirty.textContent = editor.value.trim() === saved() ? "" : "Unsaved changes";
  });
  const report = h("div", { id: "report", "aria-live": "polite" });
  const heading = h("span", { class: "muted", id: "revision" });
  const showRevision = () => {
    heading.textContent = creating ? "not saved yet" : `revision ${stored.revision} · ${stored.updated_by} · ${ago(stored.updated_at)}`;
  };
  showRevision();

  const showProblems = (problems, text) => {
    const { lines } = locate(text);
    const placed = problems.map((problem) => ({ ...problem, line: lineOf(lines, problem.path ?? "") }));
    editor.mark(placed.map((problem) => problem.line));
    fill(report, h("p", { class: "error-text" }, `${placed.length} problem(s):`), problemList(placed, editor));
  };

  /** Checks the editor's document locally, then on the server; answers it when valid. */
  const check = async () => {
    const text = editor.value;
    const syntax = locate(text).error;
    if (syntax) {
      editor.mark([syntax.line]);
      fill(report, h("p", { class: "error-text" }, "The document is not valid JSON:"),
        problemList([{ path: "", message: syntax.message, line: syntax.line }], editor));
      return null;
    }
    const doc = JSON.parse(text);
    try {
      const { data } = await request("POST", "/dataflows/validate", { body: doc });
      editor.mark([]);
      const { sources, pipelines, sinks } = data.components;
      fill(report, h("p", { class: "valid", id: "valid" }, `Valid: ${sources} source(s), ${pipelines} pipeline(s), ${sinks} sink(s).`));
      return doc;
    } catch (error) {
      if (error.code === "invalid_dataflow") showProblems(error.details, text);
      else fill(report, failure(error));
      return null;
    }
  };

  const save = async () => {
    const doc = await check();
    if (!doc) return;
    const after = pretty(doc);
    if (after === saved()) {
      toast("Nothing to save: the document is as stored.");
      return;
    }
    const title = creating ? `Create dataflow ${doc.name} in ${group}` : `Save a new revision of ${name}`;
    const choice = await dialog(title, diffView(saved(), after), [{ label: creating ? "Create dataflow" : "Save revision", value: "save" }]);
    if (choice !== "save") return;
    try {
      if (creating) {
        await request("POST", `/groups/${enc(group)}/dataflows`, { body: doc });
        toast(`Dataflow ${doc.name} created.`);
        location.hash = `#/groups/${enc(group)}/dataflows/${enc(doc.name)}`;
        return;
      }
      ({ data: stored, etag } = await request("PUT", base, { body: doc, headers: etag ? { "If-Match": etag } : {} }));
      editor.value = saved();
      dirty.textContent = "";
      showRevision();
      const failed = stored.status?.last_failure;
      fill(report, h("p", { class: "valid", id: "saved" }, `Saved as revision ${stored.revision}.`),
        failed ? h("p", { class: "error-text" }, `This node's worker could not start it: ${failed.error}`) : null);
      history.refresh();
    } catch (error) {
      if (error.code === "invalid_dataflow") showProblems(error.details, editor.value);
      else if (error.status === 412) fill(report, failure(new Error("Someone saved this dataflow meanwhile. Reload the page to see their revision, then apply your change again.")));
      else fill(report, failure(error));
    }
  };

  const remove = async () => {
    if (!await confirmAction(`Delete dataflow ${name}`, `Delete ${name} from group ${group}? Its workers stop it; its history stays.`, "Delete dataflow")) return;
    try {
      await request("DELETE", base, { headers: { "If-Match": etag } });
      toast(`Dataflow ${name} deleted.`);
      location.hash = `#/groups/${enc(group)}`;
    } catch (error) {
      fill(report, failure(error));
    }
  };

  const format = () => {
    const syntax = locate(editor.value).error;
    if (syntax) return check();
    editor.value = pretty(JSON.parse(editor.value));
    return null;
  };

  editor.textarea.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      save();
    }
  });

  const editorPanel = h("section", { id: "panel-editor", role: "tabpanel", "aria-labelledby": "tab-editor" },
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", id: "check", onclick: check }, "Check"),
      h("button", { type: "button", class: "secondary", onclick: format }, "Format"),
      h("button", { type: "button", id: "save", onclick: save }, creating ? "Review and create" : "Review and save"),
      dirty, h("span", { class: "spacer" }),
      creating ? null : h("button", { type: "button", class: "danger", onclick: remove }, "Delete dataflow")),
    report,
    h("label", { for: "document" }, "Document (JSON) — Ctrl+S reviews and saves"),
    editor.element);

  const graphPanel = h("section", { id: "panel-graph", role: "tabpanel", "aria-labelledby": "tab-graph" });
  const meter = new RateMeter(group, name);
  const drawGraph = async () => {
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch {
      doc = stored?.document ?? {};
    }
    meter.sources = new Set((doc.sources ?? []).map((c) => c.name));
    meter.sinks = new Set((doc.sinks ?? []).map((c) => c.name));
    const { reporting, rates } = creating ? { reporting: 0, rates: null } : await meter.sample();
    const caption = creating ? "Save the dataflow to see its event rates."
      : !reporting ? "No online worker reports this dataflow: no event rates to show."
        : !rates ? `Measuring event rates on ${reporting} worker(s)…`
          : `Events per second between the last two reports of ${reporting} worker(s): ${rate(rates.get("in") ?? 0)} in, ${rate(rates.get("out") ?? 0)} out.`;
    fill(graphPanel, h("p", { class: "muted", id: "graph-caption" }, caption), h("div", { class: "card" }, dataflowGraph(doc, rateLabels(doc, rates))));
  };

  const historyPanel = h("section", { id: "panel-history", role: "tabpanel", "aria-labelledby": "tab-history" });
  const history = {
    async refresh() {
      if (creating) return;
      const entries = await get(`${base}/revisions`);
      const current = stored.revision;
      fill(historyPanel, h("div", { class: "card" }, table(["#Revision", "When", "By", "Change", ""], entries.map((entry) => h("tr", { "data-revision": entry.revision },
        h("td", { class: "num" }, entry.revision),
        h("td", { title: when(entry.time) }, ago(entry.time)),
        h("td", {}, entry.token),
        h("td", {}, entry.action, entry.restored_from ? ` of revision ${entry.restored_from}` : "", entry.revision === current ? [" ", badge("current", "ok")] : null),
        h("td", {}, entry.action === "delete" || entry.revision === current ? null
          : h("button", { type: "button", class: "secondary", onclick: () => restore(entry.revision) }, `Review and restore ${entry.revision}`)))))));
    },
  };

  const restore = async (revision) => {
    const { document } = await get(`${base}/revisions/${revision}`);
    const body = h("div", {}, h("p", {}, `Restoring makes revision ${revision}'s document the current one, as a new revision. The change from the current document:`),
      diffView(saved(), pretty(document)));
    if (await dialog(`Restore revision ${revision} of ${name}`, body, [{ label: `Restore revision ${revision}`, value: "restore" }]) !== "restore") return;
    try {
      ({ data: stored, etag } = await request("POST", `${base}/revisions/${revision}/restore`));
      editor.value = saved();
      dirty.textContent = "";
      editor.mark([]);
      fill(report);
      showRevision();
      toast(`Revision ${revision} restored as revision ${stored.revision}.`);
      await history.refresh();
    } catch (error) {
      toast(error.message, "bad");
    }
  };

  const panels = { editor: editorPanel, graph: graphPanel, history: historyPanel };
  const tabs = Object.keys(panels).filter((key) => !creating || key !== "history").map((key) => h("button", {
    type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`,
    onclick: () => select(key),
  }, key[0].toUpperCase() + key.slice(1)));
  let graphTimer = null;
  const select = (key) => {
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.id === `tab-${key}`));
    for (const [panelKey, panel] of Object.entries(panels)) panel.hidden = panelKey !== key;
    clearTimeout(graphTimer);
    if (key === "graph") {
      const loop = () => drawGraph().catch((error) => fill(graphPanel, failure(error))).finally(() => {
        if (!view.left && !graphPanel.hidden) graphTimer = setTimeout(loop, RATE_MS);
      });
      loop();
    }
    if (key === "history") history.refresh().catch((error) => fill(historyPanel, failure(error)));
  };

  fill(view.main,
    h("div", { class: "page-head" },
      h("span", { class: "crumbs" }, h("a", { href: "#/groups" }, "Groups"), " / ", h("a", { href: `#/groups/${enc(group)}` }, group), " /"),
      h("h1", {}, creating ? "New dataflow" : name), heading,
      creating ? null : h("a", { id: "open-tap", href: `#/tap/${enc(group)}/${enc(name)}` }, "Live tap")),
    h("div", { class: "tabs", role: "tablist" }, tabs),
    editorPanel, graphPanel, historyPanel);
  select("editor");
}

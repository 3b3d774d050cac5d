// The monitoring dashboard: the cluster's counts, failing dataflows first,
// each group's event rates over the last hour, and the busiest workers.

import { enc, get } from "./api.js";
import { lineChart } from "./chart.js";
import { badge, bytes, fill, h, table } from "./dom.js";
import { failingDataflows, fleet } from "./workers.js";

const REFRESH_MS = 5000;
const HOUR_MS = 3600 * 1000;

function stat(label, value, detail, id) {
  return h("div", { class: "stat", id },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    h("div", { class: "detail" }, detail));
}

function counts(overview) {
  const { workers, components, managers } = overview;
  const types = Object.entries(components.by_type).map(([type, count]) => `${type} ${count}`).join(", ");
  return h("div", { class: "stats" },
    stat("Managers", managers.length, managers.map((m) => `${m.address} · ${m.mode} · v${m.version}`).join("; "), "stat-managers"),
    stat("Workers", workers.total, h("span", {},
      badge(`${workers.online} online`, "online"), " ",
      badge(`${workers.suspect} suspect`, workers.suspect ? "suspect" : ""), " ",
      badge(`${workers.offline} offline`, workers.offline ? "offline" : "")), "stat-workers"),
    stat("Groups", overview.groups, `cluster revision ${overview.revision}`, "stat-groups"),
    stat("Dataflows", overview.dataflows, "", "stat-dataflows"),
    stat("Components", components.sources + components.pipelines + components.sinks,
      h("span", {}, `${components.sources} sources · ${components.pipelines} pipelines · ${components.sinks} sinks`,
        types ? h("br") : null, types), "stat-components"));
}

function failing(list) {
  if (!list.length) return null;
  return h("section", { class: "card alert", id: "failing" },
    h("h2", {}, `Failing dataflows (${list.length})`),
    table(["Dataflow", "Worker", "State", "Error"], list.map((item) => h("tr", {},
      h("td", {}, h("a", { href: `#/groups/${enc(item.group)}/dataflows/${enc(item.name)}` }, `${item.group}/${item.name}`)),
      h("td", {}, item.host),
      h("td", {}, badge(item.state)),
      h("td", { class: "error-text" }, item.error ?? (item.restarting ? `${item.restarting} component(s) restarting` : ""))))));
}

function charts(rates, now) {
  const from = now - HOUR_MS;
  if (!rates.groups.length) {
    return h("section", { class: "card" }, h("h2", {}, "Events per second, last hour"),
      h("p", { class: "muted" }, "No events were counted in the last hour. Rates appear here once workers run dataflows."));
  }
  return h("section", {},
    h("h2", {}, "Events per second, last hour"),
    h("div", { class: "charts" }, rates.groups.map((group) => {
      const points = group.points.map((point) => [Date.parse(point.time), point]);
      return lineChart(`Group ${group.group}`, [
        { className: "in", label: "events in", points: points.map(([ms, p]) => [ms, p.events_in_per_sec]) },
        { className: "out", label: "events out", points: points.map(([ms, p]) => [ms, p.events_out_per_sec]) },
      ], from, now);
    })));
}

function busiest(workers, standalone) {
  const reporting = workers.filter((worker) => worker.status);
  const rows = (sorted) => sorted.slice(0, 5).map((worker) => h("tr", {},
    h("td", {}, worker.hostname, h("div", { class: "muted small" }, worker.id)),
    h("td", {}, badge(worker.state)),
    h("td", { class: "num" }, worker.cpu_percent === null || worker.cpu_percent === undefined ? "—" : `${worker.cpu_percent.toFixed(1)} %`),
    h("td", { class: "num" }, bytes(worker.status.resident_bytes)),
    h("td", { class: "num" }, worker.status.load1.toFixed(2))));
  const headers = ["Worker", "State", "#CPU", "#Memory (RSS)", "#Load 1 min"];
  const byCpu = [...reporting].sort((a, b) => (b.cpu_percent ?? 0) - (a.cpu_percent ?? 0));
  const byRss = [...reporting].sort((a, b) => b.status.resident_bytes - a.status.resident_bytes);
  const empty = standalone
    ? "No other worker reports to this standalone node; its own worker is on the workers page."
    : "No worker has sent a heartbeat yet.";
  return h("div", { class: "row" },
    h("section", { class: "card", id: "top-cpu" }, h("h2", {}, "Highest CPU"), table(headers, rows(byCpu), { empty })),
    h("section", { class: "card", id: "top-rss" }, h("h2", {}, "Highest memory"), table(headers, rows(byRss), { empty })));
}

/** The dashboard page. */
export async function dashboard(view) {
  const status = h("span", { class: "muted small", id: "updated" });
  const body = h("div");
  fill(view.main, h("div", { class: "page-head" }, h("h1", {}, "Monitoring"), status), body);
  await view.every(REFRESH_MS, async () => {
    const [overview, { workers, local }, rates] = await Promise.all([get("/overview"), fleet(), get("/overview/rates")]);
    if (view.left) return;
    const now = Date.now();
    fill(body, failing(failingDataflows(workers, local)), counts(overview), charts(rates, now), busiest(workers, local !== null));
    status.textContent = `Updated ${new Date(now).toLocaleTimeString(undefined, { hour12: false })}; refreshes every ${REFRESH_MS / 1000} s`;
  });
}

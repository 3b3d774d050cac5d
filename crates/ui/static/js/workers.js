// The workers page: each worker's liveness, groups, version, heartbeat,
// revisions and dataflow states; assigning groups, revoking a worker's
// credential and forgetting a worker.

import { enc, get, request } from "./api.js";
import { ago, badge, confirmAction, dialog, fill, h, table, toast, when } from "./dom.js";

const REFRESH_MS = 5000;

/**
 * Every worker (`GET /workers`) and, on a standalone node, its own worker
 * (`worker` of `GET /status`; null elsewhere).
 */
export async function fleet() {
  const [workers, health] = await Promise.all([get("/workers"), get("/health")]);
  const local = health.mode === "standalone" ? (await get("/status")).worker : null;
  return { workers, local };
}

/**
 * The dataflows that fail or restart components, on `workers` (from
 * `GET /workers`) and on a standalone node's `local` worker (from
 * `GET /status`), as {group, name, host, state, error, restarting}.
 */
export function failingDataflows(workers, local) {
  const found = [];
  for (const worker of workers) {
    for (const flow of worker.status?.dataflows ?? []) {
      if (flow.state === "failed" || flow.last_error || flow.restarting > 0) {
        found.push({ group: flow.group, name: flow.name, host: worker.hostname, state: flow.state, error: flow.last_error, restarting: flow.restarting });
      }
    }
  }
  for (const flow of local?.dataflows ?? []) {
    const restarting = flow.components.filter((component) => component.state === "restarting").length;
    if (flow.state === "failed" || flow.last_failure || restarting) {
      found.push({ group: flow.group, name: flow.name, host: "this node", state: flow.state, error: flow.last_failure?.error, restarting });
    }
  }
  return found;
}

function dataflowList(flows) {
  if (!flows.length) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "df-list" }, flows.map((flow) => h("li", { "data-dataflow": `${flow.group}/${flow.name}` },
    h("a", { href: `#/groups/${enc(flow.group)}/dataflows/${enc(flow.name)}` }, `${flow.group}/${flow.name}`), " ",
    badge(flow.state), " ",
    h("span", { class: "muted small" }, flow.revision ? `rev ${flow.revision}` : "no revision runs",
      flow.wanted_revision && flow.wanted_revision !== flow.revision ? ` (wanted ${flow.wanted_revision})` : ""),
    flow.last_error ? h("div", { class: "error-text small" }, flow.last_error) : null)));
}

function revisionCell(worker) {
  const applied = worker.status?.applied_revision;
  if (applied === undefined) return h("span", { class: "muted" }, `— / ${worker.desired_revision}`);
  const inStep = applied === worker.desired_revision;
  return h("span", {}, `${applied} / ${worker.desired_revision} `, badge(inStep ? "in step" : "behind", inStep ? "ok" : "behind"));
}

async function assign(worker, refresh) {
  const groups = await get("/groups");
  const boxes = groups.map((group) => h("input", { type: "checkbox", value: group.name, id: `assign-${group.name}`, checked: worker.groups.includes(group.name) }));
  const body = h("div", {},
    h("p", {}, `Pick the groups whose dataflows ${worker.hostname} runs. An assignment wins over the worker's own configuration (`,
      h("code", {}, worker.own_groups.join(", ") || "none"), ") until you go back to it."),
    h("fieldset", { class: "checks" }, h("legend", {}, "Groups"),
      boxes.map((box) => h("label", { class: "inline", for: box.id }, box, box.value))));
  const choice = await dialog(`Groups of ${worker.hostname}`, body, [
    { label: "Use its own groups", value: "own", tone: "secondary" },
    { label: "Assign", value: "assign" },
  ]);
  if (!choice) return;
  const picked = boxes.filter((box) => box.checked).map((box) => box.value);
  if (choice === "assign" && !picked.length) {
    toast("Pick at least one group, or go back to its own groups.", "bad");
    return;
  }
  try {
    await request("PUT", `/workers/${enc(worker.id)}/groups`, { body: { groups: choice === "own" ? null : picked } });
    toast(choice === "own" ? `${worker.hostname} runs its own groups again.` : `${worker.hostname} now runs ${picked.join(", ")}.`);
    await refresh();
  } catch (error) {
    toast(error.message, "bad");
  }
}

/** Revokes a worker's credential, or forgets the worker, once confirmed. */
async function withdraw(worker, action, refresh) {
  const [title, text, label, method, path] = action === "revoke"
    ? [`Revoke ${worker.hostname}`, `The manager will refuse ${worker.hostname}'s credential from now on; it keeps running what it has but gets no change. It may enroll again only once forgotten.`, "Revoke", "POST", `/workers/${enc(worker.id)}/revoke`]
    : [`Forget ${worker.hostname}`, `The manager forgets ${worker.hostname}. If it still runs, it enrolls again with the enrollment token.`, "Forget", "DELETE", `/workers/${enc(worker.id)}`];
  if (!await confirmAction(title, text, label)) return;
  try {
    await request(method, path);
    toast(action === "revoke" ? `${worker.hostname} revoked.` : `${worker.hostname} forgotten.`);
    await refresh();
  } catch (error) {
    toast(error.message, "bad");
  }
}

function workerRow(worker, refresh) {
  const assigned = worker.assigned_groups !== null && worker.assigned_groups !== undefined;
  return h("tr", { "data-worker": worker.hostname },
    h("td", {}, h("strong", {}, worker.hostname), h("div", { class: "muted small mono" }, worker.id),
      worker.revoked ? badge("revoked", "bad") : null),
    h("td", {}, badge(worker.state)),
    h("td", {}, worker.groups.join(", "), h("div", { class: "muted small" }, assigned ? "assigned on the manager" : "its own"),
      worker.allowed_groups ? h("div", { class: "muted small" }, `its enrollment token allows ${worker.allowed_groups.join(", ")}`) : null),
    h("td", {}, worker.version),
    h("td", { title: when(worker.last_heartbeat) }, ago(worker.last_heartbeat)),
    h("td", {}, revisionCell(worker)),
    h("td", {}, dataflowList(worker.status?.dataflows ?? [])),
    h("td", {}, h("div", { class: "toolbar" },
      h("button", { type: "button", class: "secondary", onclick: () => assign(worker, refresh) }, "Assign groups"),
      worker.revoked ? null : h("button", { type: "button", class: "secondary", onclick: () => withdraw(worker, "revoke", refresh) }, "Revoke"),
      h("button", { type: "button", class: "secondary", onclick: () => withdraw(worker, "forget", refresh) }, "Forget"))));
}

function localCard(local) {
  return h("section", { class: "card", id: "local-worker" },
    h("h2", {}, "This node's own worker"),
    h("p", { class: "muted" }, `A standalone node runs the dataflows of ${local.groups.join(", ")} itself, at revision ${local.applied_revision}.`),
    dataflowList(local.dataflows.map((flow) => ({ ...flow, last_error: flow.last_failure?.error }))));
}

/** The workers page. */
export async function workersPage(view) {
  const body = h("div");
  const updated = h("span", { class: "muted small" });
  fill(view.main, h("div", { class: "page-head" }, h("h1", {}, "Workers"), updated), body);
  const refresh = async () => {
    const { workers, local } = await fleet();
    if (view.left) return;
    fill(body,
      local ? localCard(local) : null,
      h("section", { class: "card" }, table(
        ["Worker", "State", "Groups", "Version", "Last heartbeat", "Applied / desired", "Dataflows", ""],
        workers.map((worker) => workerRow(worker, refresh)),
        { empty: "No worker has enrolled yet. Start one with service.mode = worker, the manager's address and the enrollment token." })));
    updated.textContent = `Updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
  };
  await view.every(REFRESH_MS, refresh);
}

// Groups: the list with a form to create one; a group's page with its
// description, its workers, its dataflows with their state on them, and
// deletion.

import { enc, get, request } from "./api.js";
import { ago, badge, confirmAction, dialog, failure, fill, h, table, toast, when } from "./dom.js";
import { fleet } from "./workers.js";

/** The groups page. */
export async function groupsPage(view) {
  const groups = await get("/groups");
  const name = h("input", { type: "text", id: "group-name", name: "name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}", title: "Letters, digits, _ . and -, starting with a letter or digit; up to 64" });
  const description = h("input", { type: "text", id: "group-description", name: "description", size: 40 });
  const message = h("div", { role: "alert" });
  const form = h("form", { class: "inline", id: "create-group", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await request("POST", "/groups", { body: { name: name.value.trim(), description: description.value } });
      toast(`Group ${name.value.trim()} created.`);
      location.hash = `#/groups/${enc(name.value.trim())}`;
    } catch (error) {
      fill(message, failure(error));
    }
  } },
    h("div", { class: "field" }, h("label", { for: "group-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "group-description" }, "Description"), description),
    h("button", { type: "submit" }, "Create group"));
  const rows = groups.map((group) => h("tr", { class: "clickable", "data-group": group.name, onclick: () => { location.hash = `#/groups/${enc(group.name)}`; } },
    h("td", {}, h("a", { href: `#/groups/${enc(group.name)}` }, group.name)),
    h("td", {}, group.description),
    h("td", { class: "num" }, group.dataflows),
    h("td", { class: "num" }, group.revision),
    h("td", { title: when(group.updated_at) }, ago(group.updated_at))));
  fill(view.main,
    h("div", { class: "page-head" }, h("h1", {}, "Groups")),
    h("section", { class: "card" }, h("p", { class: "muted" }, "A worker runs every dataflow of its groups. Pick a group to see and edit its dataflows."),
      table(["Name", "Description", "#Dataflows", "#Revision", "Updated"], rows, { className: "groups" })),
    h("section", { class: "card" }, h("h2", {}, "New group"), form, message));
}

async function describe(group, refresh) {
  const input = h("input", { type: "text", id: "new-description", value: group.description, size: 50 });
  const body = h("div", { class: "field" }, h("label", { for: "new-description" }, "Description"), input);
  const choice = await dialog(`Describe group ${group.name}`, body, [{ label: "Save", value: "save" }], { narrow: true });
  if (choice !== "save") return;
  try {
    await request("PUT", `/groups/${enc(group.name)}`, { body: { description: input.value }, headers: { "If-Match": `"${group.revision}"` } });
    toast("Description saved.");
    await refresh();
  } catch (error) {
    toast(error.message, "bad");
  }
}

async function remove(group) {
  const holds = group.dataflows > 0;
  const text = holds
    ? `Group ${group.name} holds ${group.dataflows} dataflow(s). Deleting it deletes them too, and its workers stop running them.`
    : `Delete group ${group.name}? Workers that run it have nothing of it to run any more.`;
  if (!await confirmAction(`Delete group ${group.name}`, text, "Delete group")) return;
  try {
    await request("DELETE", `/groups/${enc(group.name)}${holds ? "?force=true" : ""}`);
    toast(`Group ${group.name} deleted.`);
    location.hash = "#/groups";
  } catch (error) {
    toast(error.message, "bad");
  }
}

/** How many of `runners` report `flow` running, failed, or not yet. */
function workerStates(runners, flow) {
  const states = runners.map((worker) =>
    worker.dataflows.find((f) => f.group === flow.group && f.name === flow.name)?.state ?? "pending");
  const counts = ["running", "failed", "pending"].map((state) => [state, states.filter((s) => s === state).length]);
  const shown = counts.filter(([, count]) => count > 0);
  if (!shown.length) return h("span", { class: "muted" }, "—");
  return shown.map(([state, count]) => [badge(`${count} ${state}`, state === "pending" ? "warn" : state), " "]);
}

/** A group's page. */
export async function groupPage(view) {
  const name = view.params.group;
  const refresh = async () => {
    const [group, dataflows, { workers, local }] = await Promise.all([get(`/groups/${enc(name)}`), get(`/groups/${enc(name)}/dataflows`), fleet()]);
    // Each worker of the group as its name and the dataflows it reports.
    const runners = workers.filter((worker) => worker.groups.includes(name))
      .map((worker) => ({ hostname: worker.hostname, dataflows: worker.status?.dataflows ?? [] }));
    if (local?.groups.includes(name)) runners.push({ hostname: "this node", dataflows: local.dataflows });
    const rows = dataflows.map((flow) => {
      const doc = flow.document;
      const link = `#/groups/${enc(name)}/dataflows/${enc(flow.name)}`;
      return h("tr", { class: "clickable", "data-dataflow": flow.name, onclick: () => { location.hash = link; } },
        h("td", {}, h("a", { href: link }, flow.name)),
        h("td", {}, `${doc.sources?.length ?? 0} → ${doc.pipelines?.length ?? 0} → ${doc.sinks?.length ?? 0}`),
        h("td", { class: "num" }, flow.revision),
        h("td", { title: when(flow.updated_at) }, ago(flow.updated_at)),
        h("td", {}, flow.updated_by),
        h("td", {}, workerStates(runners, flow)));
    });
    fill(view.main,
      h("div", { class: "page-head" },
        h("span", { class: "crumbs" }, h("a", { href: "#/groups" }, "Groups"), " /"),
        h("h1", {}, `Group ${group.name}`),
        h("span", { class: "muted" }, `revision ${group.revision}`)),
      h("section", { class: "card" },
        h("p", {}, group.description || h("span", { class: "muted" }, "No description.")),
        h("div", { class: "toolbar" },
          h("button", { type: "button", class: "secondary", onclick: () => describe(group, refresh) }, "Edit description"),
          h("button", { type: "button", class: "danger", onclick: () => remove(group) }, "Delete group"))),
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, "Dataflows"), h("span", { class: "spacer" }),
          h("a", { class: "button", href: `#/groups/${enc(name)}/new`, id: "new-dataflow" }, "New dataflow")),
        h("p", { class: "muted" }, runners.length
          ? `Run by ${runners.map((worker) => worker.hostname).join(", ")}.`
          : "No worker runs this group yet: assign one on the workers page."),
        table(["Name", "Sources → pipelines → sinks", "#Revision", "Updated", "By", "On its workers"], rows,
          { empty: "No dataflow yet: create one with New dataflow." })));
  };
  await refresh();
}

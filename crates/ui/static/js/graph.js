// A dataflow as a graph in SVG: sources, then pipelines in the order of
// their inputs, then sinks, with an arrow from each input.

import { h, svg } from "./dom.js";

const NODE = { width: 180, height: 58 };
const GAP = { x: 70, y: 18 };
const HEAD = 26;

/** The component an input names: `route.output` names `route`'s output. */
function inputOf(input, names) {
  if (names.has(input)) return input;
  const cut = input.lastIndexOf(".");
  return cut > 0 && names.has(input.slice(0, cut)) ? input.slice(0, cut) : null;
}

/**
 * The graph of `doc` (a dataflow document); `rateOf(name)` gives the text
 * shown under a component (its event rate) or null.
 */
export function dataflowGraph(doc, rateOf = () => null) {
  const kinds = [["sources", "source"], ["pipelines", "pipeline"], ["sinks", "sink"]];
  const nodes = kinds.flatMap(([key, kind]) =>
    (Array.isArray(doc[key]) ? doc[key] : []).map((component) => ({ kind, component, name: String(component.name ?? "?") })));
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const names = new Set(byName.keys());
  // A pipeline's column is one after its deepest input's; sinks come last.
  const depth = new Map();
  const depthOf = (node, seen = new Set()) => {
    if (node.kind === "source") return 0;
    if (depth.has(node.name)) return depth.get(node.name);
    if (seen.has(node.name)) return 1;
    seen.add(node.name);
    const inputs = (node.component.inputs ?? []).map((input) => byName.get(inputOf(String(input), names))).filter(Boolean);
    const value = 1 + Math.max(0, ...inputs.map((input) => depthOf(input, seen)));
    depth.set(node.name, value);
    return value;
  };
  const pipelineDepth = Math.max(0, ...nodes.filter((node) => node.kind === "pipeline").map((node) => depthOf(node)));
  for (const node of nodes) {
    node.column = node.kind === "sink" ? pipelineDepth + 1 : depthOf(node);
  }
  const columns = [];
  for (const node of nodes) {
    (columns[node.column] ??= []).push(node);
    node.row = columns[node.column].length - 1;
  }
  const tallest = Math.max(1, ...columns.map((column) => column?.length ?? 0));
  const width = columns.length * NODE.width + (columns.length - 1) * GAP.x + 2;
  const height = HEAD + tallest * (NODE.height + GAP.y);
  for (const node of nodes) {
    const count = columns[node.column].length;
    const offset = ((tallest - count) * (NODE.height + GAP.y)) / 2;
    node.x = 1 + node.column * (NODE.width + GAP.x);
    node.y = HEAD + offset + node.row * (NODE.height + GAP.y);
  }

  const edges = [];
  for (const node of nodes) {
    for (const input of node.component.inputs ?? []) {
      const from = byName.get(inputOf(String(input), names));
      if (!from) continue;
      const [x1, y1] = [from.x + NODE.width, from.y + NODE.height / 2];
      const [x2, y2] = [node.x, node.y + NODE.height / 2];
      const bend = Math.max(30, (x2 - x1) / 2);
      edges.push(svg("path", { class: "edge", d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 6},${y2}`, "marker-end": "url(#arrow)" },
        svg("title", {}, `${input} → ${node.name}`)));
    }
  }
  const heads = [];
  columns.forEach((column, index) => {
    if (!column) return;
    const title = index === 0 ? "SOURCES" : index === columns.length - 1 && column[0].kind === "sink" ? "SINKS" : "PIPELINES";
    heads.push(svg("text", { class: "column", x: 1 + index * (NODE.width + GAP.x), y: 14 }, title));
  });
  const boxes = nodes.map((node) => {
    const rate = rateOf(node.name);
    return svg("g", { class: `node ${node.kind}`, transform: `translate(${node.x},${node.y})`, "data-component": node.name },
      svg("rect", { width: NODE.width, height: NODE.height, rx: 6 }),
      svg("text", { class: "name", x: 10, y: 19 }, node.name),
      svg("text", { class: "type", x: 10, y: 35 }, String(node.component.type ?? "")),
      rate ? svg("text", { class: "rate", x: 10, y: 50 }, rate) : null);
  });
  const marker = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 4, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#98a2b8" })));
  return h("div", { class: "graph" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `Graph of dataflow ${doc.name ?? ""}: ${nodes.length} components` },
      marker, heads, edges, boxes));
}

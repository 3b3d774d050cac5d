// Where each JSON path of a document is in its text: the line of every
// key and array item, so that a validation error's path (for example
// `sinks[0].inputs[0]`) can be shown on its line.

/** A path one step deeper: `.key` or `[index]`. */
function child(path, step) {
  if (typeof step === "number") return `${path}[${step}]`;
  return path ? `${path}.${step}` : step;
}

/**
 * The line (1-based) of each path in `text`, as a Map, and the syntax
 * error, if any, as {line, message}; the lines found before a syntax
 * error are kept.
 */
export function locate(text) {
  const lines = new Map();
  let at = 0;
  let line = 1;

  const fail = (message) => {
    throw Object.assign(new Error(message), { line });
  };
  const blank = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) {
      if (text[at] === "\n") line += 1;
      at += 1;
    }
  };
  const expect = (char) => {
    blank();
    if (text[at] !== char) fail(`expected \`${char}\` but found ${text[at] ? `\`${text[at]}\`` : "the end"}`);
    at += 1;
  };
  const string = () => {
    expect('"');
    const start = at;
    while (at < text.length && text[at] !== '"') {
      if (text[at] === "\n") fail("a string does not end on its line");
      at += text[at] === "\\" ? 2 : 1;
    }
    if (at >= text.length) fail("a string does not end");
    at += 1;
    return JSON.parse(text.slice(start - 1, at));
  };
  // The members of an object or the items of an array, up to `close`.
  const items = (close, item) => {
    at += 1;
    blank();
    if (text[at] === close) {
      at += 1;
      return;
    }
    for (let index = 0; ; index += 1) {
      item(index);
      blank();
      if (text[at] === ",") at += 1;
      else return expect(close);
    }
  };
  const value = (path) => {
    blank();
    if (!lines.has(path)) lines.set(path, line);
    const char = text[at];
    if (char === "{") {
      return items("}", () => {
        blank();
        const keyLine = line;
        const inner = child(path, string());
        lines.set(inner, keyLine);
        expect(":");
        value(inner);
      });
    }
    if (char === "[") return items("]", (index) => value(child(path, index)));
    if (char === '"') return string();
    const literal = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(at, at + 64));
    if (!literal) fail(char === undefined ? "the document ends too early" : `unexpected \`${char}\``);
    at += literal[0].length;
  };

  try {
    value("");
    blank();
    if (at < text.length) fail("there is more after the document");
    return { lines, error: null };
  } catch (error) {
    return { lines, error: { line: error.line ?? line, message: error.message } };
  }
}

/**
 * The line of `path` in `lines` (from `locate`), or of its nearest
 * enclosing path that exists (a missing field is shown on its object).
 */
export function lineOf(lines, path) {
  let current = path;
  for (;;) {
    if (lines.has(current)) return lines.get(current);
    const cut = Math.max(current.lastIndexOf("."), current.lastIndexOf("["));
    if (cut <= 0) return lines.get("") ?? 1;
    current = current.slice(0, cut);
  }
}

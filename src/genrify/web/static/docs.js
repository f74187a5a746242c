// Renders /openapi.json as a list of endpoints. Text is inserted with textContent only.
"use strict";

(function () {
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  // Text with `code` spans (Markdown's backticks) as a paragraph-like element: code in <code>, never raw backticks.
  function rich(tag, text, cls) {
    const node = el(tag, undefined, cls);
    String(text).split("`").forEach(function (part, i) {
      if (part) node.appendChild(i % 2 ? el("code", part) : document.createTextNode(part));
    });
    return node;
  }

  function responses(op) {
    const box = el("div", undefined, "responses");
    Object.keys(op.responses || {}).forEach(function (code) {
      const r = op.responses[code];
      box.appendChild(rich("p", code + ": " + (r.description || ""), "lead"));
      const content = r.content || {};
      Object.keys(content).forEach(function (type) {
        const example = content[type].example;
        if (example !== undefined) box.appendChild(el("pre", JSON.stringify(example, null, 2), "example"));
      });
    });
    return box;
  }

  function schemaText(schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.anyOf) return schema.anyOf.map(schemaText).join(" | ");
    let text = schema.type || "";
    if (schema.format) text += " (" + schema.format + ")";
    if (schema.minimum !== undefined || schema.maximum !== undefined) {
      text += " [" + (schema.minimum ?? "") + ".." + (schema.maximum ?? "") + "]";
    }
    if (schema.default !== undefined) text += ", default " + JSON.stringify(schema.default);
    return text;
  }

  async function main() {
    const box = document.getElementById("endpoints");
    const response = await fetch("/openapi.json");
    const spec = await response.json();
    const desc = document.getElementById("description");
    (spec.info.description || "").split("\n").forEach(function (line) {
      if (line.trim()) desc.appendChild(rich("p", line.replace(/^\*\s*/, "• ")));
    });
    Object.keys(spec.paths).forEach(function (path) {
      const item = spec.paths[path];
      Object.keys(item).forEach(function (method) {
        const op = item[method];
        const card = el("section", undefined, "result");
        const title = el("h2");
        title.appendChild(el("code", method.toUpperCase() + " " + path));
        card.appendChild(title);
        if (op.summary) card.appendChild(rich("p", op.summary));
        if (op.description) {
          op.description.split("\n\n").forEach(function (para) { card.appendChild(rich("p", para, "lead")); });
        }
        const params = op.parameters || [];
        if (params.length) {
          const list = el("ul");
          params.forEach(function (p) {
            list.appendChild(rich("li", p.name + " (" + p.in + (p.required ? ", required" : "") + "): " +
              schemaText(p.schema) + (p.description ? " — " + p.description : "")));
          });
          card.appendChild(list);
        }
        if (op.requestBody) {
          card.appendChild(el("p", "Body: " + Object.keys(op.requestBody.content || {}).join(", ")));
        }
        card.appendChild(responses(op));
        box.appendChild(card);
      });
    });
  }

  main().catch(function (e) {
    document.getElementById("endpoints").appendChild(el("p", "Could not load /openapi.json: " + e, "status error"));
  });
})();

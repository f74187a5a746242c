// Renders /openapi.json as a list of endpoints. Text is inserted with textContent only.
"use strict";

(function () {
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
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
      if (line.trim()) desc.appendChild(el("p", line.replace(/^\*\s*/, "• ")));
    });
    Object.keys(spec.paths).forEach(function (path) {
      const item = spec.paths[path];
      Object.keys(item).forEach(function (method) {
        const op = item[method];
        const card = el("section", undefined, "result");
        const title = el("h2");
        title.appendChild(el("code", method.toUpperCase() + " " + path));
        card.appendChild(title);
        if (op.summary) card.appendChild(el("p", op.summary));
        if (op.description) {
          op.description.split("\n\n").forEach(function (para) { card.appendChild(el("p", para, "lead")); });
        }
        const params = op.parameters || [];
        if (params.length) {
          const list = el("ul");
          params.forEach(function (p) {
            list.appendChild(el("li", p.name + " (" + p.in + (p.required ? ", required" : "") + "): " +
              schemaText(p.schema) + (p.description ? " — " + p.description : "")));
          });
          card.appendChild(list);
        }
        if (op.requestBody) {
          card.appendChild(el("p", "Body: " + Object.keys(op.requestBody.content || {}).join(", ")));
        }
        const codes = Object.keys(op.responses || {});
        if (codes.length) card.appendChild(el("p", "Responses: " + codes.join(", "), "lead"));
        box.appendChild(card);
      });
    });
  }

  main().catch(function (e) {
    document.getElementById("endpoints").appendChild(el("p", "Could not load /openapi.json: " + e, "status error"));
  });
})();

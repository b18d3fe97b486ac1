// Parses AsyncAPI documents with the official parser and prints, per file, its diagnostics and
// what the parser understood (channels, operations, message payloads), as one JSON object.
// Usage: NODE_PATH=<cache>/node_modules node validate.cjs FILE...   Exit 1 if any is invalid.
"use strict";

const fs = require("node:fs");
const { Parser } = require("@asyncapi/parser");

// The parser's severities: 0 error, 1 warning, 2 information, 3 hint.
const SEVERITY = ["error", "warning", "information", "hint"];

function payloadView(schema) {
  if (!schema) return null;
  const variants = schema.oneOf() || [];
  return {
    title: schema.title() || null,
    discriminator: schema.discriminator() || null,
    // The `type` constant of each variant: the event types a consumer may receive.
    types: variants.map((v) => {
      const type = (v.properties() || {}).type;
      return type ? type.const() : null;
    }),
  };
}

function view(document) {
  return {
    asyncapi: document.version(),
    title: document.info().title(),
    channels: document.channels().all().map((c) => ({
      id: c.id(),
      address: c.address(),
      messages: c.messages().all().map((m) => payloadView(m.payload())),
    })),
    operations: document.operations().all().map((o) => ({
      id: o.id(),
      action: o.action(),
      channels: o.channels().all().map((c) => c.address()),
    })),
  };
}

async function main(files) {
  const parser = new Parser();
  const results = [];
  for (const file of files) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"), {
      source: file,
    });
    results.push({
      file,
      valid: document !== undefined,
      diagnostics: diagnostics.map((d) => ({
        severity: SEVERITY[d.severity] || String(d.severity),
        code: String(d.code),
        message: d.message,
        path: d.path.join("/"),
      })),
      document: document === undefined ? null : view(document),
    });
  }
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  return results.every((r) => r.valid) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
    process.exit(2);
  },
);

// Validates AsyncAPI documents with the AsyncAPI initiative's own parser (schema + semantic rules).
// usage: node validate.mjs FILE...   exit 1 when any document has an error; prints every error.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of errors) {
    console.log(`${file}: error ${d.code} at ${d.path.join("/")}: ${d.message}`);
  }
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).length;
  if (document === undefined || errors.length > 0) {
    failed = true;
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()} (${warnings} warnings)`);
  }
}
process.exit(failed ? 1 : 0);

// `npm run docs:config -w server`: regenerates docs/CONFIG.md from the schema.
import { writeFileSync } from "node:fs";
import { renderConfigReference } from "./reference.ts";

writeFileSync(new URL("../../../docs/CONFIG.md", import.meta.url), renderConfigReference());

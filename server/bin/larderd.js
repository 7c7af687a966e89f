#!/usr/bin/env node
import { launch } from "./launch.js";

await launch("larderd", import.meta.url, new URL("../dist/main.js", import.meta.url), new URL("../src/main.ts", import.meta.url));

#!/usr/bin/env node
import { launch } from "./launch.js";

await launch("larder", import.meta.url, new URL("../dist/client/main.js", import.meta.url), new URL("../src/client/main.ts", import.meta.url));

import { defineConfig } from "vitest/config";

// One run covers every workspace; each workspace keeps its own settings.
export default defineConfig({
  test: {
    projects: ["server", "stacks", "secrets", "scripts"],
  },
});

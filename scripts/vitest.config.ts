import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "scripts",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
  },
});

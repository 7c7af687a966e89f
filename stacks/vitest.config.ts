import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "stacks",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
  },
});

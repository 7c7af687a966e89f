import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "secrets",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
  },
});

import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "secrets",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Each test runs the real age binary many times; a busy 2-core machine needs more than 5 s.
    testTimeout: 60_000,
  },
});

import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "stacks",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    setupFiles: ["test/tmp-root.ts"],
    // Synthesis runs the CDKTF toolchain; under a full parallel run on 2 cores one can take more than 5 s. The timeout guards against hangs, not speed.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

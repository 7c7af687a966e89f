import { describe, expect, it } from "vitest";
import { humanDuration, parseDuration } from "./duration.ts";

describe("durations", () => {
  it("says durations in words, singular for one", () => {
    expect(humanDuration(1)).toBe("1 second");
    expect(humanDuration(2)).toBe("2 seconds");
    expect(humanDuration(90)).toBe("1 minute 30 seconds");
    expect(humanDuration(86400)).toBe("1 day");
    expect(humanDuration(0)).toBe("0 seconds");
    for (const text of ["3 months", "1 year", "12 hours", "30 days", "2 years 1 month 1 day 1 hour 1 minute 1 second"]) {
      expect(humanDuration(parseDuration(text))).toBe(text);
    }
  });

  it("does not read units from Object.prototype", () => {
    expect(() => parseDuration("3 constructor")).toThrow(/unknown unit "constructor"/);
    expect(() => parseDuration("1 toString")).toThrow(/unknown unit/);
  });
});

/**
 * The guides are only useful if their commands and links are true: every `just RECIPE` written in
 * docs/*.md or README.md must be a recipe of the justfile, and every relative link must name a
 * file inside the repository (a clone has nothing outside it), with its #anchor if it has one.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "./helpers.ts";

const JUST = join(REPO, "node_modules", ".bin", "just");

function recipeNames(): Set<string> {
  const summary = spawnSync(JUST, ["--summary"], { cwd: REPO, encoding: "utf8" });
  if (summary.status !== 0) throw new Error(`just --summary failed: ${summary.stderr}`);
  return new Set(summary.stdout.trim().split(/\s+/));
}

const FENCE = /^ {0,3}(```|~~~)[^\n]*\n[\s\S]*?^ {0,3}\1[ \t]*$/gm;
const INLINE_CODE = /`[^`\n]+`/g;

/** The text of code blocks and code spans: where commands are written. */
export function codeOf(markdown: string): string[] {
  const blocks = markdown.match(FENCE) ?? [];
  const spans = markdown.replace(FENCE, "").match(INLINE_CODE) ?? [];
  return [...blocks, ...spans];
}

/** Recipes named in code as `just NAME` (prose "just" is an English word, not a command). */
export function justRecipes(markdown: string): string[] {
  const found: string[] = [];
  for (const code of codeOf(markdown)) {
    for (const match of code.matchAll(/(?:^|[\s;&|(`$])just[ \t]+([a-z][a-z0-9_-]*)/gm)) found.push(match[1] as string);
  }
  return found;
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a dash, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of markdown.replace(FENCE, "").matchAll(/^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const text = (match[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*]/g, "");
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Link targets outside code, without external URLs (anything with a scheme). */
export function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(FENCE, "").replace(INLINE_CODE, "");
  const targets: string[] = [];
  for (const match of prose.matchAll(/\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = match[1] as string;
    if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) targets.push(target);
  }
  return targets;
}

/** What is wrong with one markdown file: unknown recipes and links that do not resolve. */
export function problemsIn(file: string, markdown: string, recipes: Set<string>, root: string): string[] {
  const problems: string[] = [];
  const name = relative(root, file);
  for (const recipe of justRecipes(markdown)) {
    if (!recipes.has(recipe)) problems.push(`${name}: \`just ${recipe}\` is not a recipe in the justfile`);
  }
  for (const link of relativeLinks(markdown)) {
    const [path = "", fragment] = link.split("#", 2);
    const target = path === "" ? file : resolve(dirname(file), decodeURIComponent(path));
    if (relative(root, target).startsWith("..")) {
      problems.push(`${name}: link ${link} leaves the repository, so it is broken in every clone`);
    } else if (path !== "" && !existsSync(target)) {
      problems.push(`${name}: link ${link} names a file that does not exist`);
    } else if (fragment !== undefined && target.endsWith(".md") && (target === file || statSync(target).isFile())) {
      const anchors = anchorsOf(target === file ? markdown : readFileSync(target, "utf8"));
      if (!anchors.has(fragment)) problems.push(`${name}: link ${link} names no heading of ${relative(root, target)}`);
    }
  }
  return problems;
}

const DOCS = [
  join(REPO, "README.md"),
  ...readdirSync(join(REPO, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(REPO, "docs", f)),
];

describe("docs", () => {
  it("every `just RECIPE` exists and every relative link resolves, in README.md and docs/*.md", () => {
    const recipes = recipeNames();
    expect(recipes.has("deploy"), `recipes: ${[...recipes].join(" ")}`).toBe(true);
    const problems = DOCS.flatMap((file) => problemsIn(file, readFileSync(file, "utf8"), recipes, REPO));
    expect(problems).toEqual([]);
  });

  it("the guides exist, are linked from the README, and name recipes", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    for (const guide of ["AWS.md", "MIGRATION.md", "OPERATIONS.md"]) {
      expect(DOCS).toContain(join(REPO, "docs", guide));
      expect(relativeLinks(readme)).toContain(`docs/${guide}`);
    }
    expect(justRecipes(readFileSync(join(REPO, "docs", "AWS.md"), "utf8"))).toEqual(expect.arrayContaining(["deploy", "token", "cache-create", "destroy"]));
  });

  it("catches a wrong recipe, a missing file, a missing anchor and a link out of the repository", () => {
    const root = join(REPO, "docs");
    const file = join(root, "fixture.md");
    const fixture = [
      "# Title",
      "## Step 2: deploy",
      "Run `just deploy --stack x`, then `just deplyo`; just so you know, `npx just` lists them.",
      "```sh",
      "just gc-once --host h",
      "just  no-such-recipe",
      "```",
      "[ok](#step-2-deploy) [ok](#title) [ok](STACKS.md) [ok](https://example.com/x.md) `[code](nowhere.md)`",
      "[bad](#step-3) [bad](MISSING.md) [bad](../../outside/README.md) [bad](STACKS.md#no-such-heading)",
    ].join("\n");
    expect(justRecipes(fixture)).toEqual(["gc-once", "no-such-recipe", "deploy", "deplyo"]);
    expect(problemsIn(file, fixture, new Set(["deploy", "gc-once"]), REPO)).toEqual([
      "docs/fixture.md: `just no-such-recipe` is not a recipe in the justfile",
      "docs/fixture.md: `just deplyo` is not a recipe in the justfile",
      "docs/fixture.md: link #step-3 names no heading of docs/fixture.md",
      "docs/fixture.md: link MISSING.md names a file that does not exist",
      "docs/fixture.md: link ../../outside/README.md leaves the repository, so it is broken in every clone",
      "docs/fixture.md: link STACKS.md#no-such-heading names no heading of docs/STACKS.md",
    ]);
  });

  it("makes GitHub's anchors", () => {
    const anchors = anchorsOf("## 6. DNS, the first boot, and a way in\n### `destroy` hangs on the VPC\n## Tokens\n## Tokens\n");
    expect([...anchors]).toEqual(["6-dns-the-first-boot-and-a-way-in", "destroy-hangs-on-the-vpc", "tokens", "tokens-1"]);
  });
});

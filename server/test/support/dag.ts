/** Random closures for GC tests: a DAG of tiny store paths built by the real Nix. */
import type { NixEnv } from "./nix.ts";

export interface Dag {
  /** Store paths by node index. */
  paths: string[];
  /** edges[i]: indices node i refers to (all < i). */
  edges: number[][];
}

/** A seeded PRNG so a failing run can be replayed from the seed it prints. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DAG_NIX = `{ nonce, edges }:
let
  es = builtins.fromJSON edges;
  nodes = builtins.genList (i: builtins.derivation {
    name = "gc-\${nonce}-\${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("echo node \${toString i} " + builtins.concatStringsSep " " (map (j: toString (builtins.elemAt nodes j)) (builtins.elemAt es i)) + " > $out") ];
  }) (builtins.length es);
in nodes
`;

export async function buildDag(nix: NixEnv, nonce: string, size: number, random: () => number): Promise<Dag> {
  const edges: number[][] = [];
  for (let i = 0; i < size; i++) {
    const refs = new Set<number>();
    if (i > 0) {
      const n = Math.floor(random() * 3);
      for (let k = 0; k < n; k++) refs.add(Math.floor(random() * i));
    }
    edges.push([...refs]);
  }
  const out = await nix.build(DAG_NIX, ["--argstr", "nonce", nonce, "--argstr", "edges", JSON.stringify(edges)]);
  const paths = out.split("\n");
  if (paths.length !== size) throw new Error(`expected ${size} paths, got ${paths.length}`);
  return { paths, edges };
}

/** Indices reachable from `roots` (roots included). */
export function closureOf(edges: number[][], roots: Iterable<number>): Set<number> {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const i = stack.pop() as number;
    if (seen.has(i)) continue;
    seen.add(i);
    stack.push(...(edges[i] ?? []));
  }
  return seen;
}

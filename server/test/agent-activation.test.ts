/**
 * The agent's activation kinds, health checks and systemd supervisor, one at a time: real
 * nix-env on a chroot store built by Nix 2.8 (the `system` kind with a switch-to-configuration
 * that records its calls), real HTTP for URL checks, and stand-ins for systemd-run/systemctl that
 * record the argument vectors (no systemd runs as PID 1 here).
 */
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Activator } from "../src/client/agent/activation.ts";
import { healthCheck } from "../src/client/agent/health.ts";
import { HostStore } from "../src/client/agent/store.ts";
import { ProcessSupervisor, SystemdSupervisor } from "../src/client/agent/supervisor.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { makeTempDir } from "./support/tmp.ts";

const ready = requireTool("nix-build", "activations run the real nix-env on a chroot store");

/** A fake NixOS toplevel: switch-to-configuration appends "<action> <own path>" to $SWITCH_LOG. */
const SYSTEM_NIX = `{ tag }: builtins.derivation {
  name = "nixos-system-\${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin; printf '#!/bin/sh\\\\necho \\"$1 \${tag}\\" >> \\"$SWITCH_LOG\\"\\\\n' > $out/bin/switch-to-configuration; /bin/chmod +x $out/bin/switch-to-configuration; echo \${tag} > $out/nixos-version" ];
}`;

describe.skipIf(!ready)("agent activations", () => {
  let nix: NixEnv;
  let act: Activator;
  let switchLog: string;
  const built = new Map<string, string>();

  beforeAll(async () => {
    nix = await createNixEnv();
    for (const tag of ["a", "b"]) built.set(tag, await nix.build(SYSTEM_NIX, ["--argstr", "tag", tag]));
    switchLog = join(nix.dir.path, "switch.log");
    const env = { ...nix.env, SWITCH_LOG: switchLog };
    const store = new HostStore({ root: nix.src, storeDir: "/nix/store", stateDir: join(nix.dir.path, "agent"), env });
    act = new Activator(store, new ProcessSupervisor(join(nix.dir.path, "agent", "services")), {
      profilesDir: join(nix.dir.path, "profiles"),
      profileRoots: [join(nix.dir.path, "user-profiles")],
      allowedKinds: new Set(["system", "profile"]),
      stateDir: join(nix.dir.path, "agent"),
      serviceEnv: {},
      env,
    });
  }, 120_000);
  afterAll(() => nix?.cleanup());

  it("system: sets the system profile, then runs the new path's switch-to-configuration switch; back again the same way", async () => {
    const sys = { kind: "system" } as const;
    expect(await act.current(sys)).toBeNull();
    const a = await act.activate(sys, built.get("a")!);
    expect(a.ok, a.output).toBe(true);
    expect(await act.current(sys)).toBe(built.get("a"));
    expect((await act.activate(sys, built.get("b")!)).ok).toBe(true);
    expect((await act.activate(sys, built.get("a")!)).ok).toBe(true);
    expect(await act.current(sys)).toBe(built.get("a"));
    expect((await readFile(switchLog, "utf8")).trim().split("\n")).toEqual(["switch a", "switch b", "switch a"]);
    expect(a.output).toContain(`$ nix-env --store ${nix.src} -p ${join(nix.dir.path, "profiles", "system")} --set ${built.get("a")}`);
  });

  it("profile: sets profiles only under the allowed roots; refuses others and kinds the host does not accept, touching nothing", async () => {
    const ok = { kind: "profile", profile: join(nix.dir.path, "user-profiles", "app") } as const;
    expect((await act.activate(ok, built.get("b")!)).ok).toBe(true);
    expect(await act.current(ok)).toBe(built.get("b"));
    const outside = { kind: "profile", profile: join(nix.dir.path, "elsewhere", "app") } as const;
    const r = await act.activate(outside, built.get("b")!);
    expect(r.ok).toBe(false);
    expect(r.output).toContain("is not under this agent's profile roots");
    expect(await act.current(outside)).toBeNull();
    const sneaky = { kind: "profile", profile: `${join(nix.dir.path, "user-profiles")}/../elsewhere/x` } as const;
    expect((await act.activate(sneaky, built.get("b")!)).ok).toBe(false);
    const svc = await act.activate({ kind: "service", unit: "web" }, built.get("b")!);
    expect(svc.ok).toBe(false);
    expect(svc.output).toContain('does not accept "service" activations');
  });

  it("a failing switch-to-configuration fails the activation with its output", async () => {
    const bad = await nix.build(`builtins.derivation { name = "nixos-broken"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "/bin/mkdir -p $out/bin; printf '#!/bin/sh\\\\necho activation script failed; exit 4\\\\n' > $out/bin/switch-to-configuration; /bin/chmod +x $out/bin/switch-to-configuration" ]; }`);
    const r = await act.activate({ kind: "system" }, bad);
    expect(r.ok).toBe(false);
    expect(r.code).toBe(4);
    expect(r.output).toContain("activation script failed");
  });
});

describe("agent health checks", () => {
  it("a URL check repeats until it passes; one that never passes fails at its timeout with every attempt logged", async () => {
    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      const healthy = req.url === "/ready" ? calls >= 3 : false;
      res.writeHead(healthy ? 200 : 503);
      res.end(healthy ? "up" : "starting");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const act = {} as Activator;
      const ok = await healthCheck({ url: `${base}/ready`, timeoutSeconds: 10, intervalSeconds: 1 }, { kind: "system" }, "/nix/store/x", act);
      expect(ok.ok, ok.output).toBe(true);
      expect(ok.output).toMatch(/\[attempt 1\] GET .*: 503 starting[\s\S]*\[attempt 3\] GET .*: 200 up/);
      const t0 = Date.now();
      const bad = await healthCheck({ url: `${base}/never`, timeoutSeconds: 2, intervalSeconds: 1 }, { kind: "system" }, "/nix/store/x", act);
      expect(bad.ok).toBe(false);
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(bad.output).toContain("no attempt passed within 2s");
    } finally {
      server.close();
    }
  });
});

describe("systemd supervisor", () => {
  it("runs bin/serve as a transient unit with the service's environment and properties, and stops it with systemctl", async () => {
    const tmp = await makeTempDir("systemd-stand-in");
    const dir = tmp.path;
    const bin = join(dir, "bin");
    await mkdir(bin, { recursive: true });
    const calls = join(dir, "calls");
    const active = join(dir, "active");
    // Stand-ins: record each argument vector (one argument a line); is-active answers from a file.
    const record = `for a in "$@"; do printf '%s\\n' "$a"; done >> '${calls}'; echo --- >> '${calls}'`;
    await writeFile(join(bin, "systemd-run"), `#!/bin/sh\n${record}\ntouch '${active}'\n`);
    await writeFile(join(bin, "systemctl"), `#!/bin/sh\n${record}\ncase "$1" in is-active) test -e '${active}';; stop) rm -f '${active}';; esac\n`);
    await chmod(join(bin, "systemd-run"), 0o755);
    await chmod(join(bin, "systemctl"), 0o755);
    const sup = new SystemdSupervisor(["DynamicUser=yes"], { PATH: `${bin}:/usr/bin:/bin` });
    expect(await sup.running("web")).toBe(false);
    const started = await sup.start({ unit: "web", program: "/nix/store/abc-app/bin/serve", cwd: "/nix/store/abc-app", env: { PORT: "4000", LARDER_RELEASE: "/nix/store/abc-app" } });
    expect(started.ok, started.output).toBe(true);
    expect(await sup.running("web")).toBe(true);
    expect((await sup.stop("web")).ok).toBe(true);
    expect(await sup.running("web")).toBe(false);
    const argvs = (await readFile(calls, "utf8")).split("---\n").filter(Boolean).map((b) => b.trim().split("\n"));
    expect(argvs).toContainEqual(["reset-failed", "larder-service-web.service"]);
    expect(argvs).toContainEqual([
      "--unit=larder-service-web.service",
      "--description=larder service web",
      "--property=Restart=on-failure",
      "--property=RestartSec=2",
      "--working-directory=/nix/store/abc-app",
      "--property=DynamicUser=yes",
      "--setenv=PORT=4000",
      "--setenv=LARDER_RELEASE=/nix/store/abc-app",
      "/nix/store/abc-app/bin/serve",
    ]);
    expect(argvs).toContainEqual(["stop", "larder-service-web.service"]);
    await tmp.cleanup();
  });
});

import { describe, expect, it } from "vitest";
import { NetWatch, parseDefaultRoutes } from "../../rover/netwatch.ts";

describe("NetWatch", () => {
  it("reports address and default-route changes once each", () => {
    let addrs = "eth0=10.0.0.2,wlan0=192.168.1.5";
    let routes = "wlan0/0101A8C0/100";
    const w = new NetWatch({
      addresses: () => addrs,
      routes: () => routes,
      addressEveryMs: 60_000,
      routeEveryMs: 60_000,
    });
    const seen: string[] = [];
    w.on("change", (c: { what: string; now: string }) => seen.push(`${c.what}:${c.now}`));
    expect(w.check("addresses")).toBe(false);
    addrs = "eth0=10.0.0.2"; // wlan0 went down
    expect(w.check("addresses")).toBe(true);
    expect(w.check("addresses")).toBe(false);
    routes = "wwan0/01010A64/200";
    expect(w.check("routes")).toBe(true);
    w.close();
    expect(seen).toEqual(["addresses:eth0=10.0.0.2", "routes:wwan0/01010A64/200"]);
  });

  it("its timer notices an interface going away, without being asked", async () => {
    let addrs = "wlan0=192.168.1.5,wwan0=10.64.0.7";
    const w = new NetWatch({ addresses: () => addrs, routes: () => "", addressEveryMs: 20 });
    const changed = new Promise<{ what: string; before: string; now: string }>((r) =>
      w.once("change", r),
    );
    addrs = "wwan0=10.64.0.7";
    const c = await changed;
    w.close();
    expect(c).toEqual({
      what: "addresses",
      before: "wlan0=192.168.1.5,wwan0=10.64.0.7",
      now: addrs,
    });
  });

  it("reads default routes (interface, gateway, metric) from /proc/net/route", () => {
    const table = [
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
      "wwan0\t00000000\t01400A0A\t0003\t0\t0\t200\t00000000\t0\t0\t0",
      "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
      "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
      "",
    ].join("\n");
    // Sorted, and the on-link /24 route is not a default route.
    expect(parseDefaultRoutes(table)).toBe("wlan0/0101A8C0/100,wwan0/01400A0A/200");
    expect(parseDefaultRoutes(table.replace("\t200\t", "\t50\t"))).toBe(
      "wlan0/0101A8C0/100,wwan0/01400A0A/50",
    );
    expect(parseDefaultRoutes("Iface\tDestination\n")).toBe("");
  });
});

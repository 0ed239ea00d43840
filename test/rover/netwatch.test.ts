import { describe, expect, it } from "vitest";
import { NetWatch } from "../../rover/netwatch.ts";

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
});

import { describe, expect, it } from "vitest";
import {
  blackholeWarning,
  parseDefaultRouteDevs,
  parseSourceRules,
} from "../../rover/blackhole-check.ts";

describe("can a blackholed uplink be escaped", () => {
  const two = ["wlan0", "wwan0"];

  it("warns with two uplinks and no --manage-routes, saying what to do", () => {
    const w = blackholeWarning({ defaultRouteDevs: two, manageRoutes: false });
    expect(w).toMatch(/2 uplinks \(wlan0, wwan0\)/);
    expect(w).toMatch(/--manage-routes and CAP_NET_ADMIN/);
    expect(w).toMatch(/ip rule from <address>/);
  });

  it("is quiet when every uplink has a source-routing rule (backup paths bind per uplink)", () => {
    const devAddresses = { wlan0: ["192.168.10.2"], wwan0: ["100.64.20.2"] };
    const facts = { defaultRouteDevs: two, manageRoutes: false, devAddresses };
    expect(
      blackholeWarning({ ...facts, sourceRuleFroms: ["192.168.10.2", "100.64.20.2"] }),
    ).toBeNull();
    expect(blackholeWarning({ ...facts, sourceRuleFroms: ["192.168.10.2"] })).toMatch(
      /without source routing for wwan0/,
    );
    expect(
      parseSourceRules(
        '[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"192.168.10.2","table":"10"}]',
      ),
    ).toEqual(["192.168.10.2"]);
  });

  it("is quiet with one uplink (however many routes it has) or with --manage-routes", () => {
    expect(blackholeWarning({ defaultRouteDevs: ["eth0"], manageRoutes: false })).toBeNull();
    expect(
      blackholeWarning({ defaultRouteDevs: ["eth0", "eth0"], manageRoutes: false }),
    ).toBeNull();
    expect(blackholeWarning({ defaultRouteDevs: [], manageRoutes: false })).toBeNull();
    expect(blackholeWarning({ defaultRouteDevs: two, manageRoutes: true })).toBeNull();
  });

  it("reads the default-route devices from ip's JSON", () => {
    expect(
      parseDefaultRouteDevs(
        '[{"dst":"default","gateway":"10.1.0.1","dev":"wlan0","metric":100},{"dst":"default","dev":"wwan0","metric":200}]',
      ),
    ).toEqual(["wlan0", "wwan0"]);
    expect(parseDefaultRouteDevs("")).toEqual([]);
  });
});

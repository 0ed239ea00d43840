// The source-rule plan of `--manage-routes` (rover/uplinks.ts), pure. The real `ip` side is in
// test/lab/source-rules.test.ts.
import { describe, expect, it } from "vitest";
import {
  type DefaultRoute,
  planSourceRules,
  SOURCE_RULE_PREF,
  type UplinkAddresses,
} from "../../rover/uplinks.ts";

const routes: DefaultRoute[] = [
  { dev: "wlan0", gateway: "192.168.10.1", metric: 100 },
  { dev: "wwan0", gateway: "100.64.20.1", metric: 200 },
];
const uplinks: UplinkAddresses[] = [
  { dev: "lo", ifindex: 1, addresses: ["127.0.0.1"] },
  { dev: "wlan0", ifindex: 3, addresses: ["192.168.10.2"] },
  { dev: "wwan0", ifindex: 4, addresses: ["100.64.20.2"] },
];

describe("source rules for --manage-routes (rover/uplinks.ts)", () => {
  it("adds a rule and a table per uplink with a default route, none for the rest", () => {
    const p = planSourceRules(routes, uplinks, []);
    expect(p.add).toEqual([
      { src: "192.168.10.2", table: 52_070_003, dev: "wlan0", gateway: "192.168.10.1" },
      { src: "100.64.20.2", table: 52_070_004, dev: "wwan0", gateway: "100.64.20.1" },
    ]);
    expect(p.remove).toEqual([]);
    expect(p.routed).toEqual(["wlan0", "wwan0"]);
  });

  it("leaves an address the system already routes by source to the system", () => {
    const p = planSourceRules(routes, uplinks, [{ src: "192.168.10.2", table: "10", pref: 100 }]);
    expect(p.add.map((r) => r.src)).toEqual(["100.64.20.2"]);
    expect(p.routed).toEqual(["wlan0", "wwan0"]);
  });

  it("keeps its own rules that still fit and removes those whose address went away", () => {
    const ours = (src: string, table: number) => ({
      src,
      table: String(table),
      pref: SOURCE_RULE_PREF,
    });
    const p = planSourceRules(
      routes,
      [
        uplinks[0],
        uplinks[1],
        { dev: "wwan0", ifindex: 4, addresses: ["100.64.30.9"] },
      ] as UplinkAddresses[],
      [ours("192.168.10.2", 52_070_003), ours("100.64.20.2", 52_070_004)],
    );
    expect(p.keep.map((r) => r.src)).toEqual(["192.168.10.2"]);
    expect(p.add.map((r) => r.src)).toEqual(["100.64.30.9"]);
    expect(p.remove).toEqual([ours("100.64.20.2", 52_070_004)]);
  });

  it("an uplink without an address is not routed by source", () => {
    const p = planSourceRules(routes, [uplinks[1] as UplinkAddresses], []);
    expect(p.routed).toEqual(["wlan0"]);
  });
});

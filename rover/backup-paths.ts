/**
 * Backup paths for one link (make-before-break without signaling; docs/link-health.md). The I/O
 * half of the health policy's backup rules: it gathers on every local uplink (werift patch 21's
 * addUplink: a socket and a TURN allocation bound to the uplink's address, which leave through
 * that uplink where the system routes by source address), keeps one validated candidate pair
 * per uplink by checking it every `checkEveryMs` while the link is busy (at the keepalive cadence
 * while it is idle: the policy's `backupCheckInterval`), and reports to the policy: the uplinks
 * (`onUplinks`), backups validated or lost (`onBackup`), the peer sending on another pair
 * (`onPeerMoved`), and the selection moving (`onSwitched`). It carries out `switch` decisions.
 * It decides nothing.
 */
import { networkInterfaces } from "node:os";
import type { RTCPeerConnection } from "werift";
import type { LinkHealth } from "../shared/link/health.ts";
import { defaultRoutes } from "./netwatch.ts";
import { type IceConnection, type IcePair, iceConnection } from "./werift-internals.ts";

/** Where a pair leads (the peer's address and port): backups on one uplink differ by it. */
const remoteOf = (p: IcePair) => `${p.remoteAddr[0]}:${p.remoteAddr[1]}`;

/** Default interval between checks of each backup pair (ms); see docs/link-health.md. */
export const DEFAULT_BACKUP_CHECK_MS = 2_500;
const SUCCEEDED = 3;
/** Discovery checks at most this many pairs of one uplink at a time. */
const DISCOVER_MAX = 4;

export interface Uplink {
  iface: string;
  address: string;
}

export interface UplinkView {
  /** Uplinks usable now (with a default route of their own, where the table has any). */
  present: Uplink[];
  /** The interface of the lowest-metric default route (null: none). */
  preferred: string | null;
  /**
   * Every local IPv4 address, routed or not (default: `present`). A route change passes through
   * states where an uplink's default route is briefly missing: its socket and TURN allocation
   * (and its validated backup) stay while its address does; only `present` tells the policy.
   */
  addresses?: Uplink[];
}

/**
 * The uplinks now: interfaces with a non-internal IPv4 address. Where the main table has default
 * routes, only interfaces that have one count (a link without carrier loses its routes while
 * keeping its address).
 */
export function readUplinks(
  ifaces = networkInterfaces(),
  routes: string = defaultRoutes(),
): UplinkView {
  const viaRoute = routes
    .split(",")
    .filter(Boolean)
    .map((r) => {
      const [iface = "", , metric = "0"] = r.split("/");
      return { iface, metric: Number(metric) };
    })
    .sort((a, b) => a.metric - b.metric);
  const routed = new Set(viaRoute.map((r) => r.iface));
  const present: Uplink[] = [];
  const addresses: Uplink[] = [];
  for (const [iface, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.internal || a.family !== "IPv4") continue;
      addresses.push({ iface, address: a.address });
      if (routed.size > 0 && !routed.has(iface)) continue;
      present.push({ iface, address: a.address });
    }
  }
  return { present, preferred: viaRoute[0]?.iface ?? null, addresses };
}

export interface BackupPathsOptions {
  health: LinkHealth;
  /** Called after every event fed to the policy (the link polls it). */
  tick: () => void;
  /** The selection moved (ours or the peer's renomination): SCTP resends, the link reports. */
  switched: (reason: string, path: string) => void;
  log: { debug(o: object, msg?: string): void; info(o: object, msg?: string): void };
  peer: string;
  checkEveryMs?: number;
  /** Tests: the uplinks now. */
  uplinks?: () => UplinkView;
}

export class BackupPaths {
  readonly #o: BackupPathsOptions;
  readonly #every: number;
  #pc: RTCPeerConnection | null = null;
  #subs: { unSubscribe(): void }[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (ms). */
  #dueAt = 0;
  /** When the last round of checks began (ms). */
  #lastRound = Number.NEGATIVE_INFINITY;
  /** Uplink addresses given to werift (addUplink). */
  #added = new Set<string>();
  /** The backup pair kept per uplink address. */
  #kept = new Map<string, IcePair>();
  #checking = false;
  #again = false;
  #view: UplinkView = { present: [], preferred: null };
  /**
   * The uplink werift's unbound socket used when its pair was selected: the preferred one then
   * (packets follow the routing table). Its disappearance is the active uplink's.
   */
  #unboundVia: string | null = null;
  #unboundPair: IcePair | null = null;
  #closed = false;
  /** When discovery last checked a pair (never: first in line). */
  #triedAt = new WeakMap<IcePair, number>();

  constructor(o: BackupPathsOptions) {
    this.#o = o;
    this.#every = o.checkEveryMs ?? DEFAULT_BACKUP_CHECK_MS;
  }

  /** Follow this PeerConnection (once its ICE connection exists: when the link is up). */
  attach(pc: RTCPeerConnection): void {
    if (this.#pc === pc || this.#closed) return;
    this.#detach();
    this.#pc = pc;
    const ice = iceConnection(pc);
    if (!ice?.onSelectedPairChanged) return; // werift without patch 21
    this.#subs.push(
      ice.onSelectedPairChanged.subscribe((pair, _prev, reason) => {
        if (this.#pc !== pc) return;
        this.#o.health.onSwitched(Date.now(), pair.id, this.#activeOf(pair), pathOf(pair));
        this.#o.switched(reason, pathOf(pair));
        this.#o.tick();
      }),
      ice.onPeerPath.subscribe((pair) => {
        // The controlled side follows renominations inside werift; the controlling side decides.
        if (this.#pc !== pc || !ice.iceControlling) return;
        this.#o.health.onPeerMoved(Date.now(), pair.id);
        this.#o.tick();
      }),
    );
    this.#kept.clear();
    this.#added.clear();
    this.sync();
    void this.#checkAll();
    this.schedule();
  }

  /**
   * Arm the next round for when the policy's interval says (an idle link's backups are checked
   * at its keepalive cadence, a busy one's every few seconds). Called after each round and on
   * each tick of the link, so traffic that starts shortens a long wait; a timer set for the
   * round, not one waking at the busy cadence to ask, keeps an idle rover asleep.
   */
  schedule(): void {
    if (!this.#pc || this.#closed) return;
    const now = Date.now();
    const interval = this.#o.health.backupCheckInterval(now, this.#every);
    // Never sooner than one busy interval from now: a round that could not run (no pair
    // selected yet) is tried again then, not in a loop.
    const at = Math.max(this.#lastRound + interval, now + Math.min(this.#every, interval));
    if (this.#timer && this.#dueAt <= at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#dueAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const t = Date.now();
      if (t - this.#lastRound >= this.#o.health.backupCheckInterval(t, this.#every))
        void this.#checkAll();
      this.schedule();
    }, at - now);
    this.#timer.unref();
  }

  /** The network changed (and at attach): gather on new uplinks, drop gone ones, tell the policy. */
  sync(): void {
    const ice = this.#ice();
    if (!ice) return;
    this.#view = (this.#o.uplinks ?? readUplinks)();
    const present = this.#view.present;
    const known = this.#view.addresses ?? present;
    if (ice.nominated && !ice.nominated.protocol.uplink && ice.nominated !== this.#unboundPair) {
      this.#unboundPair = ice.nominated;
      this.#unboundVia = this.#view.preferred;
    }
    const addresses = new Set(known.map((u) => u.address));
    // Single-homed: nothing of ours to back up (the peer's other uplinks still show up as pairs).
    // Gathered on while routed; kept while the address lives (a route briefly missing is not an
    // uplink gone: see UplinkView.addresses).
    if (present.length >= 2) {
      for (const u of present) {
        if (this.#added.has(u.address)) continue;
        this.#added.add(u.address);
        void ice.addUplink(u.address).then(() => this.#checkAll());
      }
    }
    for (const a of [...this.#added]) {
      if (addresses.has(a)) continue;
      this.#added.delete(a);
      const kept = this.#kept.get(a);
      this.#kept.delete(a);
      if (kept) this.#o.health.onBackup(Date.now(), kept.id, this.#labelOf(kept) ?? a, false);
      void ice.removeUplink(a);
    }
    const active = ice.nominated ? this.#activeOf(ice.nominated) : null;
    let ifaces = [...new Set(present.map((u) => u.iface))];
    // werift's unbound socket follows the routing table: once the routes prefer another uplink,
    // its packets leave with another source address, which the NATs and the TURN allocation
    // do not know. For that pair its uplink is as good as gone.
    const unboundMoved =
      ice.nominated === this.#unboundPair && active !== null && this.#view.preferred !== active;
    if (unboundMoved) ifaces = ifaces.filter((i) => i !== active);
    const uplinks = { active, preferred: this.#view.preferred, present: ifaces };
    this.#o.log.debug({ peer: this.#o.peer, ...uplinks, kept: [...this.#kept.keys()] }, "uplinks");
    this.#o.health.onUplinks(Date.now(), uplinks);
    this.#o.tick();
  }

  /**
   * The local address of the uplink this link rides when that is not the uplink the routing
   * table prefers (we switched to a backup on another uplink: the preferred one failed, and
   * without CAP_NET_ADMIN nobody moved the routes); null otherwise. Other traffic to the outside
   * (the agent's HTTP to the edge) can follow it.
   */
  escapeAddress(): string | null {
    const ice = this.#ice();
    const pair = ice?.nominated;
    const address = pair?.protocol.uplink;
    if (!pair || !address) return null;
    const iface = this.#activeOf(pair);
    if (iface === null || iface === this.#view.preferred) return null;
    return address;
  }

  /** Carry out a `switch` decision; false when the pair is gone (the policy falls back). */
  switchTo(id: string, planned = false): boolean {
    const ice = this.#ice();
    const pair = ice?.checkList.find((p) => p.id === id);
    if (!ice || !pair || !ice.isCurrentSession(pair)) return false;
    const prev = ice.nominated;
    const ok = ice.selectPair(pair, "local");
    // A planned move (to the preferred uplink) leaves a path that carried data a moment ago: it
    // is its uplink's backup at once; the next round checks it again. Until then the policy had
    // none there: flapping wifi in the lab, down again 0.6 s after a move back to it, cost an
    // ICE restart and a 4.5 s gap (two handovers) instead of a switch back.
    if (ok && planned && prev && prev !== pair && ice.isCurrentSession(prev)) {
      const key = this.#keyOf(prev, pair);
      if (key !== null) {
        this.#kept.set(key, prev);
        this.#o.health.onBackup(Date.now(), prev.id, this.#labelOf(prev) ?? key, true);
      }
    }
    // The controlled side cannot nominate: a check on the new pair, and our data on it, show
    // the controlling side where we are (it follows: onPeerPath there).
    if (ok && !ice.iceControlling) void ice.checkPair(pair, { retransmissions: 2 });
    return ok;
  }

  /** Check one kept pair per uplink; discover one where none is kept. */
  async #checkAll(): Promise<void> {
    const ice = this.#ice();
    if (!ice || this.#closed || !ice.nominated) return;
    if (this.#checking) {
      // A new uplink's paths came while a round ran: one more round right after it.
      this.#again = true;
      return;
    }
    this.#checking = true;
    this.#lastRound = Date.now();
    try {
      const active = ice.nominated;
      const groups = new Map<string, IcePair[]>();
      for (const p of ice.checkList) {
        if (p === active || !ice.isCurrentSession(p)) continue;
        const key = this.#keyOf(p, active);
        if (key === null) continue;
        const list = groups.get(key) ?? [];
        list.push(p);
        groups.set(key, list);
      }
      await Promise.all(
        [...groups].map(async ([key, pairs]) => {
          const kept = this.#kept.get(key);
          const tryFirst =
            kept && pairs.includes(kept)
              ? [kept]
              : pairs.sort((a, b) => this.#discoveryOrder(a, b)).slice(0, DISCOVER_MAX);
          for (const p of tryFirst) this.#triedAt.set(p, Date.now());
          const results = await Promise.all(tryFirst.map((p) => ice.checkPair(p)));
          const good = tryFirst.find((_, i) => results[i] !== null);
          const uplink = this.#labelOf(tryFirst[0] as IcePair) ?? key;
          if (good) {
            if (kept && kept !== good) this.#o.health.onBackup(Date.now(), kept.id, uplink, false);
            // Once per path, not per check: what an operator (and the lab) looks for before a fault.
            if (kept !== good)
              this.#o.log.info(
                { peer: this.#o.peer, uplink, to: remoteOf(good) },
                "backup path ready",
              );
            this.#kept.set(key, good);
            this.#o.health.onBackup(Date.now(), good.id, uplink, true);
          } else if (kept) {
            this.#kept.delete(key);
            this.#o.health.onBackup(Date.now(), kept.id, uplink, false);
            this.#o.log.debug(
              { peer: this.#o.peer, uplink, to: remoteOf(kept) },
              "backup path lost",
            );
          }
        }),
      );
      // The peer's checks from its other uplinks show up as pairs to other remote addresses.
      const others = ice.checkList.some(
        (p) => ice.isCurrentSession(p) && remoteOf(p) !== remoteOf(active),
      );
      this.#o.health.onPeerPaths(Date.now(), others);
      this.#o.tick();
    } finally {
      this.#checking = false;
      if (this.#again) {
        this.#again = false;
        void this.#checkAll();
      } else this.schedule();
    }
  }

  /**
   * Which backup slot a pair belongs to: its uplink address when bound to one (multi-homed), else
   * (single-homed, or werift's own unbound sockets) a different remote address than the active's.
   */
  #keyOf(p: IcePair, active: IcePair): string | null {
    if (this.#added.size > 0) return p.protocol.uplink ?? null;
    const remote = remoteOf(p);
    if (remote === remoteOf(active)) return null;
    return p.state === SUCCEEDED ? `remote ${remote}` : null;
  }

  /**
   * Discovery's order: pairs that worked first, then the least recently checked (untried ones in
   * werift's priority order). Without the second rule a round after a failed one checked the
   * same highest-priority pairs again, and an uplink whose working pair ranked past DISCOVER_MAX
   * never got a backup.
   */
  #discoveryOrder(a: IcePair, b: IcePair): number {
    return succeededFirst(a, b) || (this.#triedAt.get(a) ?? 0) - (this.#triedAt.get(b) ?? 0);
  }

  /**
   * The uplink (interface) a backup pair leaves through: its bound address's when multi-homed;
   * single-homed, the one uplink there is (the backup differs by the peer's address).
   */
  #labelOf(p: IcePair): string | null {
    const a = p.protocol.uplink;
    if (this.#added.size === 0) return this.#view.present[0]?.iface ?? "default";
    if (!a) return null;
    return (this.#view.addresses ?? this.#view.present).find((u) => u.address === a)?.iface ?? a;
  }

  /**
   * The active pair's uplink for the policy: null when single-homed; for werift's unbound socket,
   * the uplink the routes chose when the pair was selected.
   */
  #activeOf(p: IcePair): string | null {
    if (this.#added.size === 0) return null;
    if (!p.protocol.uplink) return p === this.#unboundPair ? this.#unboundVia : null;
    return this.#labelOf(p);
  }

  #ice(): IceConnection | undefined {
    return this.#closed ? undefined : iceConnection(this.#pc);
  }

  /** The PeerConnection is being replaced: stop checking its pairs until `attach`. */
  detach(): void {
    this.#detach();
    this.#pc = null;
  }

  #detach(): void {
    for (const s of this.#subs) s.unSubscribe();
    this.#subs = [];
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  close(): void {
    this.#closed = true;
    this.#detach();
    this.#pc = null;
  }
}

function pathOf(p: IcePair): string {
  return p.localCandidate?.type === "relay" ? "relay" : "direct";
}

/** Pairs that worked before first, then werift's order (priority). */
function succeededFirst(a: IcePair, b: IcePair): number {
  return (b.state === SUCCEEDED ? 1 : 0) - (a.state === SUCCEEDED ? 1 : 0);
}

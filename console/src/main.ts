/**
 * The roverlink console: sign in with a token, see the room (peers, map), link to rovers and
 * other browsers over WebRTC, chat / send commands on `control`, watch `telemetry`, talk.
 * Everything goes through the edge's HTTP protocol with the shared client.
 */
import { RoverlinkClient } from "../../shared/client.ts";
import type { Peer } from "../../shared/protocol.ts";
import { ID_PATTERN } from "../../shared/protocol.ts";
import { type CameraUi, cameraUi, closeCamera, renderCameraFigures, showCamera } from "./camera.ts";
import { CHART_POINTS, type ChartPoint, renderChart } from "./chart.ts";
import { isExpired, readTokenClaims } from "./claims.ts";
import { CommandError, parseCommand, readable, shownSender } from "./control.ts";
import { ago, h } from "./dom.ts";
import type { PeerLink } from "./link.ts";
import { renderMap } from "./map.ts";
import { RoomSession } from "./room.ts";
import { errorText, type SignalingClient } from "./signaling.ts";
import { readSignInLink } from "./signin-link.ts";

const app = document.getElementById("app") as HTMLElement;
const statusEl = document.getElementById("status") as HTMLElement;
const STORE = "roverlink.console";

function setStatus(text: string): void {
  statusEl.textContent = text;
}

interface Saved {
  edge: string;
  token: string;
  room: string;
  /** The last sign-in in this tab joined: a reload signs in again (until Sign out or a refusal). */
  signedIn?: boolean;
}

/** The peers this tab linked to (Connect, Call): a reload links to them again. */
const LINKS_STORE = "roverlink.console.links";

function loadLinked(): string[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(LINKS_STORE) ?? "[]") as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function loadSaved(): Partial<Saved> {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) ?? "{}") as Partial<Saved>;
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Sign in

function showSignIn(error?: string): void {
  const saved = loadSaved();
  app.className = "signin";
  const err = h("p", { class: "error", role: "alert", id: "signin-error" }, error ?? "");
  const edge = h("input", {
    id: "edge",
    name: "edge",
    type: "url",
    required: true,
    value: saved.edge ?? location.origin,
    autocomplete: "url",
  });
  const token = h("textarea", {
    id: "token",
    name: "token",
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "token-hint",
  });
  token.value = saved.token ?? "";
  const room = h("input", {
    id: "room",
    name: "room",
    required: true,
    // HTML patterns use the regex `v` flag, where a trailing "-" in a class must be escaped.
    pattern: "[A-Za-z0-9._\\-]{1,64}",
    value: saved.room ?? "",
  });
  const who = h("p", { class: "hint", id: "who", "aria-live": "polite" });
  const onToken = () => {
    try {
      const c = readTokenClaims(token.value);
      who.textContent = `Peer “${c.sub}”, room “${c.room}”, ${c.role}, expires ${new Date(
        c.exp * 1000,
      ).toLocaleString()}`;
      if (c.room !== "*" && !room.value) room.value = c.room;
    } catch (e) {
      who.textContent = token.value.trim() ? (e as Error).message : "";
    }
  };
  token.addEventListener("input", onToken);
  onToken();
  const form = h(
    "form",
    { "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("label", { for: "edge" }, "Edge URL"),
    edge,
    h("label", { for: "token" }, "Token"),
    token,
    h(
      "p",
      { class: "hint", id: "token-hint" },
      "Paste a token, e.g. from ",
      h("code", {}, "roverlink token --room demo --peer me-browser"),
      ". It stays in this tab only.",
    ),
    who,
    h("label", { for: "room" }, "Room"),
    room,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Sign in")),
    err,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void signIn({ edge: edge.value.trim(), token: token.value.trim(), room: room.value.trim() });
  });
  app.replaceChildren(h("section", {}, form));
  setStatus("Signed out");
}

async function signIn(given: Saved): Promise<void> {
  const input: Saved = { edge: given.edge, token: given.token, room: given.room };
  let claims: ReturnType<typeof readTokenClaims>;
  try {
    claims = readTokenClaims(input.token);
    if (isExpired(claims, Date.now())) throw new Error("this token has expired");
    if (input.room === "") throw new Error("this token is for every room: choose one");
    if (!ID_PATTERN.test(input.room))
      throw new Error(
        "a room id is 1 to 64 letters, digits, dots, dashes or underscores (no spaces)",
      );
    if (claims.room !== "*" && claims.room !== input.room) {
      throw new Error(`this token is for room “${claims.room}”`);
    }
    try {
      new URL(input.edge);
    } catch {
      throw new Error(`the edge address “${input.edge}” is not a URL (https://…)`);
    }
  } catch (e) {
    // What was given stays in the form (a sign-in link's token is nowhere else).
    sessionStorage.setItem(STORE, JSON.stringify(input));
    showSignIn((e as Error).message);
    return;
  }
  sessionStorage.setItem(STORE, JSON.stringify(input));
  const client: SignalingClient = new RoverlinkClient({ baseUrl: input.edge, token: input.token });
  setStatus(`Joining ${input.room}…`);
  const view = new RoomView(client, input.room, claims.sub, claims.exp);
  try {
    await view.start();
    sessionStorage.setItem(STORE, JSON.stringify({ ...input, signedIn: true }));
  } catch (e) {
    showSignIn(`Could not join: ${errorText(e)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Room

async function getMic(): Promise<MediaStreamTrack> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  const track = stream.getAudioTracks()[0];
  if (!track) throw new Error("no microphone");
  return track;
}

interface LinkUi {
  root: HTMLElement;
  state: HTMLElement;
  figures: Record<"rtt" | "ping" | "loss" | "path" | "pair" | "restarts", HTMLElement>;
  chart: HTMLElement;
  points: ChartPoint[];
  messages: HTMLUListElement;
  telemetry: HTMLUListElement;
  voice: HTMLElement;
  audio: HTMLAudioElement;
  camera: CameraUi;
  /** Our chat and command lines not yet acknowledged by the peer, by sequence number. */
  undelivered: Map<number, HTMLLIElement>;
  /** The state last said in the room log (a screen reader hears the log, not the heading). */
  said: string;
}

/** The tag of a line the peer had not acknowledged when its link closed. */
const CARRIED_TAG = "not acknowledged when the link closed: goes when it is back";

class RoomView {
  readonly client: SignalingClient;
  readonly roomId: string;
  readonly self: string;
  room: RoomSession;
  private peersBody = h("tbody");
  private mapBox = h("div", { class: "map-box" });
  private linksBox = h("div", { class: "links", "aria-label": "Links" });
  private roomLog = logPane("Room log");
  private linkUis = new Map<PeerLink, LinkUi>();
  /**
   * Our lines not yet acknowledged, per peer, by sequence number: they outlive the link's panel
   * as the stream outlives the link (room.ts), and show in the peer's next panel until acknowledged.
   */
  private undelivered = new Map<string, Map<number, HTMLLIElement>>();
  private refresh: ReturnType<typeof setInterval> | null = null;
  /** The token's expiry warnings. */
  private timers: ReturnType<typeof setTimeout>[] = [];
  /** What the status line says of the token, once its expiry is near (kept across edge outages). */
  private tokenNote: string | null = null;
  /** Peers the operator linked to (Connect, Call) and did not disconnect: linked again when back. */
  private wanted = new Set<string>();
  /** When the token expires (epoch ms). */
  private readonly expiresAt: number;

  constructor(client: SignalingClient, room: string, self: string, expS: number) {
    this.client = client;
    this.roomId = room;
    this.self = self;
    this.expiresAt = expS * 1000;
    this.room = new RoomSession(
      { client, room, self, kind: "browser", getMic },
      {
        peers: () => this.renderPeers(),
        nearby: () => this.renderPeers(),
        link: (_r, link) => this.addLinkUi(link),
        roomLog: (_r, text) => this.log(text),
        refused: (_r, why) => void this.signedOut(why),
        replaced: () => this.steppedBack(),
        peerBack: (_r, peer) => this.relink(peer),
        edgeReachable: (_r, ok, why) => {
          // The edge back: the token's note stays said (it was wiped by the plain line).
          const note = ok ? this.tokenNote : "the edge cannot be reached, retrying";
          setStatus(`Signed in as ${this.self} in ${this.roomId}${note ? `: ${note}` : ""}`);
          this.log(ok ? "the edge answers again" : `the edge cannot be reached: ${why ?? ""}`);
        },
        session: () => undefined,
        state: (link) => this.renderLink(link),
        message: (link, channel, msg) => {
          const ui = this.linkUis.get(link);
          if (!ui) return;
          const list = channel === "telemetry" ? ui.telemetry : ui.messages;
          // Everything here was received; an echoing rover sends our own messages back, said so
          // (else each line looks sent twice). `from` is the peer's word: a message naming us
          // that this page never sent, or naming someone else, is shown as the peer's.
          const echoed = msg.type !== "raw" && msg.from === this.self && link.sentFromHere(msg);
          const who = (from: string) => shownSender(from, link.peer, echoed);
          const text =
            msg.type === "chat"
              ? `${who(msg.from)}: ${msg.text}`
              : msg.type === "cmd"
                ? `${who(msg.from)} ▸ ${msg.name} ${msg.args === undefined ? "" : JSON.stringify(msg.args)}`
                : msg.type === "raw"
                  ? readable(msg.text)
                  : JSON.stringify(msg);
          appendLog(list, text, false, echoed ? `echoed by ${link.peer}` : undefined);
        },
        audio: (link, stream) => {
          const ui = this.linkUis.get(link);
          if (ui) ui.audio.srcObject = stream;
        },
        video: (link, stream) => {
          const ui = this.linkUis.get(link);
          if (ui) showCamera(ui.camera, stream);
        },
        sample: (link, s, statsLoss, health) => {
          const ui = this.linkUis.get(link);
          if (!ui) return;
          // The health policy's figures (probes on `telemetry`); ICE's own before any answer.
          // While the link is down they are the last ones before it went: not shown as live.
          const live = link.state === "connected" || link.state === "degraded";
          const pingRtt =
            health.rttMs === null || !live ? null : Math.round(health.rttMs * 10) / 10;
          const iceRtt = live ? s.rttMs : null;
          const loss = health.lossPct === null ? statsLoss : health.lossPct / 100;
          ui.points.push({ rttMs: pingRtt ?? iceRtt, loss });
          if (ui.points.length > CHART_POINTS) ui.points.shift();
          ui.figures.rtt.textContent = iceRtt === null ? "–" : `${iceRtt} ms`;
          ui.figures.ping.textContent = pingRtt === null ? "–" : `${pingRtt} ms`;
          ui.figures.loss.textContent = loss === null ? "–" : `${Math.round(loss * 100)} %`;
          ui.figures.path.textContent = s.path;
          ui.figures.pair.textContent = s.pair;
          ui.figures.restarts.textContent = String(link.restarts);
          ui.root.dataset.path = s.path;
          ui.root.dataset.audioRx = String(s.audioBytesReceived);
          if (s.video) renderCameraFigures(ui.camera, s.video);
          ui.chart.replaceChildren(renderChart(ui.points, `RTT and loss to ${link.peer}`));
        },
        log: (link, text) => this.log(`${link.peer}: ${text}`),
        rebased: (_r, peer, from) => {
          // The same lines, renumbered on the peer's new stream (reliable.ts rebase).
          const pending = this.undelivered.get(peer);
          if (!pending) return;
          const moved = [...pending].filter(([seq]) => seq >= from);
          pending.clear();
          for (const [seq, li] of moved) pending.set(seq - from, li);
        },
        delivered: (link, below) => {
          const pending = this.undelivered.get(link.peer);
          if (!pending) return;
          const now = Date.now();
          for (const [seq, li] of pending) {
            if (seq >= below) continue;
            pending.delete(seq);
            li.classList.add("delivered");
            li.classList.remove("queued");
            li.querySelector(".tag")?.remove();
            // Late is said: a command held while the link was down ran when it arrived.
            const lateS = Math.round((now - Number(li.dataset.sentAt)) / 1000);
            const said = lateS >= 2 ? `delivered ${lateS} s after it was sent` : "delivered";
            li.append(h("span", { class: "tick", title: said, "aria-label": said }, " ✓"));
            if (lateS >= 2) li.append(h("span", { class: "tag late" }, ` ${said}`));
          }
        },
      },
    );
  }

  async start(): Promise<void> {
    await this.room.join();
    this.render();
    setStatus(`Signed in as ${this.self} in ${this.roomId}`);
    // A reload: link again to the peers this tab had linked to (voice is not resumed).
    const before = loadLinked();
    for (const id of before) this.wanted.add(id);
    const again = before.filter((id) => this.room.peers.has(id));
    if (again.length > 0) this.log(`linking again to ${again.join(", ")} (as before the reload)`);
    for (const id of again) void this.connect(id, false);
    this.warnBeforeExpiry();
    // "Last seen" from the edge: events say who comes and goes, not who is still polling, so the
    // list is read again every 15 s (else a live rover's age only ever grows).
    let tick = 0;
    this.refresh = setInterval(() => {
      if (++tick % 3 === 0) void this.room.refreshPeers();
      else this.renderPeers();
    }, 5000);
    // A new network (Wi-Fi -> cellular, back online): restart ICE on every link.
    window.addEventListener("online", this.onNetworkChange);
    const conn = (navigator as { connection?: EventTarget }).connection;
    conn?.addEventListener("change", this.onNetworkChange);
  }

  /**
   * Said ahead, not found out when the edge refuses the token and every link is cut: 5 min and
   * 1 min before, and at once when signed in with under 5 min left and no mark within a minute.
   */
  private warnBeforeExpiry(): void {
    const at = new Date(this.expiresAt).toLocaleTimeString();
    const say = (leftMs: number) => {
      const left = leftMs < 60_000 ? "under a minute" : `${Math.round(leftMs / 60_000)} min`;
      const text = `your token expires at ${at} (in ${left}): the edge then signs you out and your links close. Sign in again with a new token before then.`;
      this.tokenNote = text;
      this.log(text);
      setStatus(`Signed in as ${this.self} in ${this.roomId}: ${text}`);
    };
    const leftMs = this.expiresAt - Date.now();
    let nextMarkMs = Number.POSITIVE_INFINITY;
    for (const aheadMs of [5 * 60_000, 60_000]) {
      const inMs = leftMs - aheadMs;
      if (inMs <= 0) continue;
      nextMarkMs = Math.min(nextMarkMs, inMs);
      this.timers.push(setTimeout(() => say(aheadMs), inMs));
    }
    if (leftMs > 0 && leftMs < 5 * 60_000 && nextMarkMs > 60_000) say(leftMs);
    // At the expiry itself: the edge still takes the token for its clock-skew leeway (30 s), and
    // the page went on looking signed in until it refused it.
    if (leftMs > 0)
      this.timers.push(
        setTimeout(() => {
          const text = `your token expired at ${at}: the edge signs you out within 30 s and your links close. Sign in again with a new token.`;
          this.tokenNote = text;
          this.log(text);
          setStatus(`Signed in as ${this.self} in ${this.roomId}: ${text}`);
        }, leftMs),
      );
  }

  /** A peer the operator had linked to is back (it left, or restarted): link again. */
  private relink(peer: string): void {
    if (!this.wanted.has(peer)) return;
    const live = this.room.links.get(peer);
    if (live && live.state !== "closed") return;
    this.log(`${peer} is back: linking again`);
    void this.connect(peer, false);
  }

  /** Another page took our id (room.ts stepBack): this one says so and offers to take it back. */
  private steppedBack(): void {
    this.stopTimers();
    sessionStorage.setItem(STORE, JSON.stringify({ ...loadSaved(), signedIn: false }));
    showSignIn(
      `Signed out here: another console (a tab or browser) signed in as ${this.self} in ${this.roomId} and took over its links. Sign in again here to take them back.`,
    );
  }

  private stopTimers(): void {
    if (this.refresh) clearInterval(this.refresh);
    this.refresh = null;
    for (const t of this.timers.splice(0)) clearTimeout(t);
    window.removeEventListener("online", this.onNetworkChange);
  }

  private onNetworkChange = (): void => {
    this.log("network changed");
    this.room.networkChanged();
  };

  private render(): void {
    app.className = "room";
    const x = h("input", { id: "pos-x", type: "number", step: "any", inputmode: "decimal" });
    const y = h("input", { id: "pos-y", type: "number", step: "any", inputmode: "decimal" });
    const pos = this.room.me?.position;
    if (pos) {
      x.value = String(pos.x);
      y.value = String(pos.y);
    }
    const posForm = h(
      "form",
      { class: "row", "aria-label": "My position" },
      h("div", { class: "grow" }, h("label", { for: "pos-x" }, "x"), x),
      h("div", { class: "grow" }, h("label", { for: "pos-y" }, "y"), y),
      h("button", { type: "submit", class: "secondary" }, "Set position"),
    );
    // A bad value is said at its field (it was a line in the Room log, far from the form).
    for (const f of [x, y]) f.addEventListener("input", () => f.setCustomValidity(""));
    posForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const px = Number(x.value);
      const py = Number(y.value);
      const bad =
        x.value === "" || !Number.isFinite(px)
          ? x
          : y.value === "" || !Number.isFinite(py)
            ? y
            : null;
      if (bad) {
        bad.setCustomValidity("a number, please");
        bad.reportValidity();
        return;
      }
      this.room.setPosition(px, py).catch((e: unknown) => this.log(`position: ${errorText(e)}`));
    });
    const leave = h("button", { type: "button", class: "secondary" }, "Sign out");
    leave.addEventListener("click", () => void this.stop());
    app.replaceChildren(
      h(
        "section",
        { "aria-labelledby": "peers-title", id: "peers" },
        h("h2", { id: "peers-title" }, `Room ${this.roomId}`),
        h(
          "table",
          {},
          h("caption", { class: "hint" }, `You are ${this.self}. Peers in the room:`),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Peer"),
              h("th", { scope: "col" }, "Kind"),
              h("th", { scope: "col" }, "Status"),
              h("th", { scope: "col" }, "Last seen"),
              h("th", { scope: "col" }, h("span", { class: "sr" }, "Actions")),
            ),
          ),
          this.peersBody,
        ),
        // Above the links: with two link panels open it sat ~2500 px down, its errors unseen.
        h("h3", {}, "Room log"),
        this.roomLog,
        this.linksBox,
        h("div", { class: "row" }, leave),
      ),
      h(
        "section",
        { "aria-labelledby": "map-h", id: "map" },
        h("h2", { id: "map-h" }, "Map"),
        this.mapBox,
        posForm,
      ),
    );
    this.renderPeers();
  }

  private renderPeers(): void {
    const now = Date.now();
    const peers = [...this.room.peers.values()].sort((a, b) => a.id.localeCompare(b.id));
    const rows = peers.map((p) => this.peerRow(p, now));
    if (rows.length === 0) {
      rows.push(h("tr", {}, h("td", { colspan: 5, class: "hint" }, "Nobody else is here yet.")));
    }
    // Rows are made anew (every 5 s): the button that had the focus gets it back, else a
    // keyboard user lost it to <body> between two presses.
    const had = document.activeElement;
    const label =
      had instanceof HTMLElement && this.peersBody.contains(had)
        ? had.getAttribute("aria-label")
        : null;
    this.peersBody.replaceChildren(...rows);
    if (label) {
      const same = [...this.peersBody.querySelectorAll<HTMLButtonElement>("button")].find(
        (b) => b.getAttribute("aria-label") === label,
      );
      // Connect turns into a disabled "Linked": its row's Call button takes the focus.
      const target =
        same && !same.disabled ? same : same?.closest("tr")?.querySelector("button:enabled");
      (target as HTMLElement | null | undefined)?.focus();
    }
    this.mapBox.replaceChildren(
      renderMap({
        self: this.room.me,
        peers,
        nearby: new Set(this.room.nearby),
        radius: this.room.nearbyRadius,
      }),
    );
  }

  private peerRow(p: Peer, now: number): HTMLTableRowElement {
    const link = this.room.links.get(p.id);
    const status = link ? link.state : this.room.nearby.includes(p.id) ? "nearby" : "present";
    const connect = h("button", { type: "button" }, link ? "Linked" : "Connect");
    connect.setAttribute("aria-label", `Connect to ${p.id}`);
    if (link) connect.setAttribute("disabled", "");
    connect.addEventListener("click", () => void this.connect(p.id, false));
    const call = h("button", { type: "button", class: "secondary" }, "Call");
    call.setAttribute("aria-label", `Call ${p.id}`);
    call.addEventListener("click", () => void this.connect(p.id, true));
    // A linked peer is heard on the link far more often than the edge's list is read again.
    const seen = Math.max(p.lastSeen, link?.heardAt() ?? 0);
    return h(
      "tr",
      { "data-peer": p.id },
      h("th", { scope: "row" }, p.id),
      h("td", {}, p.kind),
      h("td", { class: `state-${status}` }, status),
      h("td", {}, h("time", { datetime: new Date(seen).toISOString() }, ago(seen, now))),
      h("td", { class: "actions" }, connect, call),
    );
  }

  private async connect(peer: string, voice: boolean): Promise<void> {
    this.wanted.add(peer);
    try {
      await this.room.connect(peer, { voice });
    } catch (e) {
      this.log(`connect to ${peer}: ${errorText(e)}`);
    }
    this.renderPeers();
  }

  private addLinkUi(link: PeerLink): void {
    const fig = (name: string) => h("dd", { "data-figure": name }, "–");
    const figures = {
      rtt: fig("rtt"),
      ping: fig("ping"),
      loss: fig("loss"),
      path: fig("path"),
      pair: fig("pair"),
      restarts: fig("restarts"),
    };
    const messages = logPane(`Messages with ${link.peer}`);
    // Telemetry comes every second: announced, it would drown everything else (it is read on
    // demand: focus the pane).
    const telemetry = logPane(`Telemetry from ${link.peer}`, "off");
    // A line of ours gets a ✓ once the peer acknowledged it (framed control: exactly once).
    // Lines an earlier link to the peer left unacknowledged come first: they go on this one.
    let undelivered = this.undelivered.get(link.peer);
    if (!undelivered) {
      undelivered = new Map();
      this.undelivered.set(link.peer, undelivered);
    }
    messages.append(...[...undelivered].sort(([a], [b]) => a - b).map(([, li]) => li));
    const chatIn = h("input", { id: `chat-${link.peer}`, autocomplete: "off" });
    const chatForm = h(
      "form",
      { class: "row" },
      h("div", { class: "grow" }, h("label", { for: `chat-${link.peer}` }, "Chat"), chatIn),
      h("button", { type: "submit" }, "Send"),
    );
    chatForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!chatIn.value.trim()) return;
      const seq = link.chat(chatIn.value);
      const li = appendLog(messages, `${this.self}: ${chatIn.value}`, true, queuedTag(link));
      li.dataset.sentAt = String(Date.now());
      if (seq !== null) undelivered.set(seq, li);
      chatIn.value = "";
    });
    const cmdIn = h("input", {
      id: `cmd-${link.peer}`,
      autocomplete: "off",
      placeholder: 'drive {"v":0.5}',
    });
    const cmdForm = h(
      "form",
      { class: "row" },
      h("div", { class: "grow" }, h("label", { for: `cmd-${link.peer}` }, "Command"), cmdIn),
      h("button", { type: "submit" }, "Run"),
    );
    // A line that cannot go as typed stays in the box, with the reason on it.
    cmdIn.addEventListener("input", () => cmdIn.setCustomValidity(""));
    cmdForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      let cmd: ReturnType<typeof parseCommand>;
      try {
        cmd = parseCommand(cmdIn.value);
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        cmdIn.setCustomValidity(e.message);
        cmdIn.reportValidity();
        return;
      }
      if (!cmd) return;
      const seq = link.command(cmd.name, cmd.args);
      const li = appendLog(messages, `${this.self} ▸ ${cmdIn.value}`, true, queuedTag(link));
      li.dataset.sentAt = String(Date.now());
      if (seq !== null) undelivered.set(seq, li);
      cmdIn.value = "";
    });
    const audio = h("audio", { autoplay: true });
    const camera = cameraUi(link.peer);
    const voice = h("div", { class: "voice row", role: "group", "aria-label": "Voice" });
    const restart = h("button", { type: "button", class: "secondary" }, "Restart ICE");
    restart.addEventListener("click", () => link.restart("by the operator"));
    const close = h("button", { type: "button", class: "secondary" }, "Disconnect");
    close.addEventListener("click", () => {
      this.wanted.delete(link.peer);
      void link.close("disconnected by you");
    });
    const state = h("span", { class: `state-${link.state}`, "data-state": "" }, link.state);
    const chart = h("div");
    const root = h(
      "section",
      { class: "link", "data-link": link.peer, "aria-label": `Link to ${link.peer}` },
      h("h3", {}, `Link to ${link.peer} (${link.role}) — `, state),
      camera.box,
      chart,
      h(
        "dl",
        { class: "figures" },
        ...(
          [
            ["ICE RTT", figures.rtt],
            ["Ping RTT", figures.ping],
            ["Loss", figures.loss],
            ["Path", figures.path],
            ["Restarts", figures.restarts],
          ] as const
        ).map(([k, v]) => h("div", {}, h("dt", {}, k), v)),
      ),
      h("p", { class: "hint" }, "Pair: ", figures.pair),
      h("h4", {}, "Control"),
      messages,
      chatForm,
      cmdForm,
      h("h4", {}, "Telemetry"),
      telemetry,
      voice,
      audio,
      h("div", { class: "row" }, restart, close),
    );
    const ui: LinkUi = {
      root,
      state,
      figures,
      chart,
      points: [],
      messages,
      telemetry,
      voice,
      audio,
      camera,
      undelivered,
      said: "",
    };
    this.linkUis.set(link, ui);
    this.linksBox.prepend(root);
    this.renderLink(link);
  }

  private renderLink(link: PeerLink): void {
    const ui = this.linkUis.get(link);
    if (!ui) return;
    // Up and down are said in the room log (polite): a link coming up was told to nobody using
    // a screen reader. Not every wobble: only into connected, from anything else.
    const up = link.state === "connected";
    if (up && ui.said !== "connected") this.log(`${link.peer}: linked`);
    if (up || link.state === "closed" || ui.said === "connected") ui.said = link.state;
    ui.state.textContent = link.state;
    ui.state.className = `state-${link.state}`;
    ui.root.dataset.state = link.state;
    ui.root.dataset.voice = link.voice;
    const b = (label: string, fn: () => void, secondary = false) => {
      const el = h("button", { type: "button", class: secondary ? "secondary" : undefined }, label);
      el.addEventListener("click", fn);
      return el;
    };
    const err = (e: unknown) => this.log(`voice: ${errorText(e)}`);
    const controls: HTMLElement[] = [
      h("span", { "data-voice": link.voice }, `Voice: ${link.voice}`),
    ];
    if (link.state !== "closed") {
      if (link.voice === "off") controls.push(b("Start voice", () => link.startVoice().catch(err)));
      if (link.voice === "ringing") {
        controls.push(b("Accept call", () => link.startVoice().catch(err)));
      }
      if (link.voice === "on") controls.push(b("Mute", () => link.setMuted(true), true));
      if (link.voice === "muted") controls.push(b("Unmute", () => link.setMuted(false), true));
      if (link.voice !== "off") controls.push(b("Hang up", () => link.hangUp().catch(err), true));
    }
    ui.voice.replaceChildren(...controls);
    this.saveLinked();
    if (link.state === "closed") {
      // The panel goes; the lines the peer has not acknowledged do not: say what becomes of them.
      // They are kept (room.ts keeps the stream): they go, once, on the next link to the peer,
      // a restarted process of it too, and show in its panel.
      if (ui.undelivered.size > 0) {
        this.log(
          `${link.peer}: the link closed with ${ui.undelivered.size} of your messages not acknowledged: they go when a link to ${link.peer} is made again (to a restarted ${link.peer} too)`,
        );
        for (const li of ui.undelivered.values()) tagLine(li, CARRIED_TAG);
      }
      closeCamera(ui.camera);
      this.linkUis.delete(link);
      ui.root.remove();
    }
    this.renderPeers();
  }

  /** The links this tab made (a peer that called us calls again if it wants to). */
  private saveLinked(): void {
    const open = [...this.room.links.values()].filter(
      (l) => l.role === "offerer" && l.state !== "closed",
    );
    sessionStorage.setItem(LINKS_STORE, JSON.stringify(open.map((l) => l.peer)));
  }

  private log(text: string): void {
    appendLog(this.roomLog, text, false);
  }

  async stop(): Promise<void> {
    this.stopTimers();
    await this.room.leave();
    sessionStorage.removeItem(STORE);
    sessionStorage.removeItem(LINKS_STORE);
    showSignIn();
  }

  /**
   * The edge refused our token for good (it expired): no more events, no new links, so this view
   * would only look alive. Back to the sign-in form, saying why; the rest of the form is kept.
   */
  private async signedOut(why: string): Promise<void> {
    this.stopTimers();
    await this.room.leave().catch(() => undefined);
    const saved = loadSaved();
    sessionStorage.setItem(STORE, JSON.stringify({ ...saved, token: "" }));
    sessionStorage.removeItem(LINKS_STORE);
    showSignIn(`Signed out: the edge refused the token (${why}). Sign in with a new one.`);
  }
}

/**
 * A log pane: a `role="log"` list whose new lines a screen reader announces politely (when it is
 * idle; `off`: never, read on demand), in the tab order (`tabindex="0"`) so that a keyboard user
 * can reach it and scroll it with the arrow, Page and Home/End keys (it scrolls within 12 rem).
 */
function logPane(label: string, live: "polite" | "off" = "polite"): HTMLUListElement {
  return h("ul", {
    class: "log",
    role: "log",
    "aria-label": label,
    "aria-live": live,
    tabindex: 0,
  });
}

/** Tag a line of a log (replacing its tag, if it had one). */
function tagLine(li: HTMLLIElement, tag: string): void {
  li.querySelector(".tag")?.remove();
  li.querySelector(".text")?.before(h("span", { class: "tag" }, tag), " ");
}

/** The tag of a line sent while the link is down: it waits, and goes when the link is back. */
function queuedTag(link: PeerLink): string | undefined {
  return link.state === "connected" || link.state === "degraded"
    ? undefined
    : "queued: link down, goes when it is back";
}

/** A line of a log, with the time it came (1 Hz telemetry is read by its time). */
function appendLog(
  list: HTMLUListElement,
  text: string,
  mine: boolean,
  tag?: string,
): HTMLLIElement {
  const now = new Date();
  const li = h(
    "li",
    { class: mine ? "out" : "in" },
    h("time", { datetime: now.toISOString() }, now.toLocaleTimeString()),
    " ",
    ...(tag ? [h("span", { class: "tag" }, tag), " "] : []),
    h("span", { class: "text" }, text),
  );
  // Follow new lines only when the reader was at the end: one who scrolled up (Home, the arrow
  // keys) to read is not pulled back down by the next line.
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  list.append(li);
  while (list.children.length > 200) list.firstElementChild?.remove();
  if (atEnd) list.scrollTop = list.scrollHeight;
  return li;
}

/**
 * A sign-in link (`npm start` prints one): sign in straight away, token out of the address bar.
 * A reload of a signed-in tab signs in again with what this tab kept.
 */
function start(): void {
  // A sign-in link opened in a tab that already shows the console: only a load read the hash.
  window.addEventListener("hashchange", () => {
    if (readSignInLink(location.hash)) location.reload();
  });
  const link = readSignInLink(location.hash);
  if (!link) {
    const saved = loadSaved();
    if (saved.signedIn && saved.edge && saved.token && saved.room) {
      void signIn({ edge: saved.edge, token: saved.token, room: saved.room });
    } else {
      showSignIn();
    }
    return;
  }
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  let room = link.room ?? "";
  if (!room) {
    try {
      const c = readTokenClaims(link.token);
      if (c.room !== "*") room = c.room;
    } catch {
      // signIn says what is wrong with the token
    }
  }
  void signIn({ edge: link.edge ?? location.origin, token: link.token, room });
}

start();

/**
 * The rover's camera in a link panel: the picture, fps / bitrate / dropped / freezes from
 * getStats(), and a freeze indicator driven by the frames actually painted
 * (requestVideoFrameCallback), so that it turns "frozen" within half a second of the last frame.
 */
import { h } from "./dom.ts";
import { type VideoSample, type VideoState, videoFigures, videoState } from "./video-figures.ts";

export interface CameraUi {
  box: HTMLElement;
  video: HTMLVideoElement;
  state: HTMLElement;
  figures: Record<"fps" | "kbps" | "dropped" | "freezes" | "size", HTMLElement>;
  prev: VideoSample | null;
  /** performance.now() of the last frame painted, null before any. */
  lastFrameAt: number | null;
  frames: number;
  timer: ReturnType<typeof setInterval> | null;
}

const LABELS: Record<VideoState, string> = {
  none: "no camera",
  waiting: "waiting for the first frame",
  playing: "live",
  frozen: "FROZEN",
};

export function cameraUi(peer: string): CameraUi {
  const fig = (name: string) => h("dd", { "data-figure": `video-${name}` }, "–");
  const figures = {
    fps: fig("fps"),
    kbps: fig("kbps"),
    dropped: fig("dropped"),
    freezes: fig("freezes"),
    size: fig("size"),
  };
  // Muted: browsers autoplay muted video only; the camera has no sound anyway.
  const video = h("video", {
    autoplay: true,
    muted: true,
    playsinline: true,
    "aria-label": `Camera of ${peer}`,
  });
  video.muted = true;
  const state = h("span", { class: "camera-state", role: "status", "data-camera": "none" }, "");
  const box = h(
    "div",
    { class: "camera", hidden: true },
    h("div", { class: "camera-picture" }, video, state),
    h(
      "dl",
      { class: "figures" },
      ...(
        [
          ["fps", figures.fps],
          ["Bitrate", figures.kbps],
          ["Dropped", figures.dropped],
          ["Freezes", figures.freezes],
          ["Size", figures.size],
        ] as const
      ).map(([k, v]) => h("div", {}, h("dt", {}, k), v)),
    ),
  );
  const ui: CameraUi = {
    box,
    video,
    state,
    figures,
    prev: null,
    lastFrameAt: null,
    frames: 0,
    timer: null,
  };
  renderState(ui);
  return ui;
}

/** The camera's track arrived (a new one after a rebuild). */
export function showCamera(ui: CameraUi, stream: MediaStream): void {
  ui.box.hidden = false;
  ui.video.srcObject = stream;
  ui.lastFrameAt = null;
  ui.prev = null;
  void ui.video.play().catch(() => undefined);
  const onFrame = () => {
    ui.lastFrameAt = performance.now();
    ui.frames++;
    ui.video.requestVideoFrameCallback(onFrame);
  };
  if ("requestVideoFrameCallback" in ui.video) ui.video.requestVideoFrameCallback(onFrame);
  ui.timer ??= setInterval(() => renderState(ui), 100);
}

export function renderCameraFigures(ui: CameraUi, cur: VideoSample): void {
  const f = videoFigures(ui.prev, cur);
  ui.prev = cur;
  ui.figures.fps.textContent = f.fps === null ? "–" : String(f.fps);
  ui.figures.kbps.textContent = f.kbps === null ? "–" : `${f.kbps} kbit/s`;
  ui.figures.dropped.textContent = String(f.dropped);
  ui.figures.freezes.textContent = `${f.freezes} (${f.freezeS} s)`;
  ui.figures.size.textContent = f.size;
  ui.box.dataset.framesDecoded = String(cur.framesDecoded);
}

function renderState(ui: CameraUi): void {
  const st = videoState(ui.video.srcObject !== null, ui.lastFrameAt, performance.now());
  if (ui.state.dataset.camera === st) return;
  ui.state.dataset.camera = st;
  ui.state.textContent = LABELS[st];
  ui.box.dataset.camera = st;
}

export function closeCamera(ui: CameraUi): void {
  if (ui.timer) clearInterval(ui.timer);
  ui.timer = null;
  ui.video.srcObject = null;
}

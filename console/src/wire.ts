/**
 * How application text travels on a data channel. `control` may carry a framing layer shared
 * with the rover agent (rover/reliable.ts); `telemetry` is raw text. A codec turns a channel into
 * a text pipe.
 */
export interface TextPipe {
  send(text: string): void;
  close(): void;
}

export interface ChannelCodec {
  readonly name: string;
  attach(dc: RTCDataChannel, onText: (text: string) => void): TextPipe;
}

const decoder = new TextDecoder();

/** Plain text frames (binary frames are read as UTF-8). */
export const rawCodec: ChannelCodec = {
  name: "raw",
  attach(dc, onText) {
    dc.binaryType = "arraybuffer";
    const onMessage = (ev: MessageEvent) => {
      const d = ev.data as unknown;
      onText(typeof d === "string" ? d : decoder.decode(d as ArrayBuffer));
    };
    dc.addEventListener("message", onMessage);
    return {
      send(text) {
        if (dc.readyState === "open") dc.send(text);
      },
      close() {
        dc.removeEventListener("message", onMessage);
      },
    };
  },
};

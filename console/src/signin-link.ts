/**
 * A ready sign-in link: `<console>/#token=<token>[&room=<room>][&edge=<url>]`. The token rides
 * in the URL fragment, which browsers never send to a server, and is removed from the address
 * bar as soon as it is read. Pure parsing; main.ts acts on it.
 */
export interface SignInLink {
  token: string;
  room?: string;
  edge?: string;
}

/** The sign-in a fragment carries, or null when it carries no token. */
export function readSignInLink(hash: string): SignInLink | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const token = params.get("token")?.trim();
  if (!token) return null;
  const out: SignInLink = { token };
  const room = params.get("room")?.trim();
  if (room) out.room = room;
  const edge = params.get("edge")?.trim();
  if (edge) out.edge = edge;
  return out;
}

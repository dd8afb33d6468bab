// Signing in: the identity (a JWT) that the selling site vouches for its user with, or the demo
// sign-in's, and joining a queue with it.
import { ApiError, api, setUserId, store, userId } from "./common.js";

export const identity = () => store.get("identity");

/** A user id as the server takes it: a decimal string from 1 to 2^63 - 1. */
export const validUserId = (s) => /^[1-9][0-9]{0,18}$/.test(s) && BigInt(s) < 2n ** 63n;

/** Keep an identity and its user id; another user's tickets are forgotten. */
export function signIn(jwt, id) {
  setUserId(String(id));
  store.set("identity", jwt);
}

/** The claims of a JWT ({sub, exp}), unchecked (the server checks); null when it names no user. */
export function claimsOf(jwt) {
  try {
    const b64 = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const c = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))));
    return validUserId(c.sub) && typeof c.exp === "number" ? c : null;
  } catch {
    return null;
  }
}

/**
 * Sign in as user `id` (a valid user id, as a string) through the demo sign-in (POST /dev/identity)
 * and keep the identity.
 * Rejects with ApiError, code "not_found" where there is none: there, people sign in on the selling
 * site, which links here with /?identity=….
 */
export async function devSignIn(id, patient = false) {
  const r = await api("POST", "/dev/identity", { body: `{"user_id":${id}}`, patient });
  signIn(r.identity, id);
  return r.identity;
}

const refused = (e) => e.code === "identity_required" || e.code === "identity_invalid";

/**
 * Join a concert's queue with the kept identity. One the server refuses (expired, say) is renewed
 * once through the demo sign-in where there is one; else this rejects with code "signed_out".
 */
export async function joinQueue(concertId) {
  const join = (jwt) => api("POST", `/api/v1/concerts/${concertId}/queue`, { body: { identity: jwt }, patient: true });
  const kept = identity();
  if (kept) {
    try { return await join(kept); } catch (e) { if (!refused(e)) throw e; }
  }
  const id = String(userId());
  let fresh = null;
  if (validUserId(id)) {
    try { fresh = await devSignIn(id, true); } catch (e) { if (e.code !== "not_found") throw e; }
  }
  if (fresh) {
    try { return await join(fresh); } catch (e) { if (!refused(e)) throw e; }
  }
  store.drop("identity");
  throw new ApiError(401, { code: "signed_out", detail: "Your sign-in has expired — sign in again." });
}

// Verifies an MCPGuard execution envelope (a Sigstore bundle v0.3 with a DSSE envelope
// signed by a plain key) with the official Sigstore JS verifier, no transparency log,
// certificate log or timestamp required (thresholds 0), trusting only the given key.
//
//   node sigstore_verify.mjs BUNDLE.json PUBLIC_KEY.pem
//
// Prints "verified" and exits 0, or prints "rejected: <why>" and exits 1.
import { readFileSync } from "node:fs";
import { createPublicKey } from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";
import { Verifier, toSignedEntity, toTrustMaterial } from "@sigstore/verify";

const [bundlePath, keyPath] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, "utf8")));
  const key = createPublicKey(readFileSync(keyPath, "utf8"));
  const emptyRoot = {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
  const trust = toTrustMaterial(emptyRoot, () => ({ publicKey: key, validFor: () => true }));
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log("verified");
} catch (e) {
  console.log(`rejected: ${e.message}`);
  process.exit(1);
}

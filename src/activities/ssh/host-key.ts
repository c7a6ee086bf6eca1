// Host key fingerprints as OpenSSH prints them, and the key type for messages about a key that does not match.
import { createHash } from 'node:crypto';

/** OpenSSH's fingerprint of a public key blob (the SSH wire format): `SHA256:` + base64 without padding. */
export function hostKeyFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of a public key blob (`ssh-ed25519`, `ssh-rsa`...), for error messages. */
export function keyType(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  return len > 0 && len < 64 && keyBlob.length >= 4 + len ? keyBlob.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

// Passkeys in the browser: the server's WebAuthn options (JSON, base64url binaries) handed to
// navigator.credentials, and the credential handed back as JSON, both by the browser's own
// converters. Where the browser has none, passkey buttons stay hidden.

export function passkeysSupported() {
  return typeof window.PublicKeyCredential === 'function'
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';
}

// Makes a passkey: the RegistrationResponseJSON for `customers/me/factors/{id}/confirm`.
export async function createPasskey(publicKey) {
  const options = PublicKeyCredential.parseCreationOptionsFromJSON(publicKey);
  const credential = await navigator.credentials.create({ publicKey: options });
  return credential.toJSON();
}

// Signs with a passkey: the AuthenticationResponseJSON for `2fa/verify`, `step-up/verify` or
// `auth/passkey`.
export async function usePasskey(publicKey) {
  const options = PublicKeyCredential.parseRequestOptionsFromJSON(publicKey);
  const credential = await navigator.credentials.get({ publicKey: options });
  return credential.toJSON();
}

// A WebAuthn call the browser or the customer ended, as a failure the pages show in words
// (`messageFor`); any other error is passed on as it is.
export function passkeyFailure(error) {
  const words = passkeyProblem(error);
  return words ? Object.assign(new Error(words), { code: 'PASSKEY_NOT_USED' }) : error;
}

// The words for a WebAuthn call the browser or the customer ended (a cancelled prompt, a
// timeout, a passkey made already on this device).
function passkeyProblem(error) {
  switch (error?.name) {
    case 'NotAllowedError':
      return 'The passkey was not used: the request was cancelled or timed out. Try again.';
    case 'InvalidStateError':
      return 'This device already holds a passkey for your FinHub account.';
    case 'SecurityError':
      return 'Passkeys do not work on this address. Open FinHub at its usual address.';
    default:
      return null;
  }
}

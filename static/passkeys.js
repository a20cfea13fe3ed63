// Passkeys (WebAuthn) for the hosted pages: the one script Portcullis serves. Every page works
// without it; it shows the passkey forms (hidden by default) where the browser has WebAuthn,
// runs the ceremony on submit and posts the result as an ordinary form field.
//
// A form opts in with data-passkey="create" or "get". Its options come from data-options
// (WebAuthn JSON, as the server gave them) or from a POST to data-options-url; the form's
// hidden "ceremony" (the server's handle of this ceremony) and "credential" fields carry the
// answer. data-conditional on a "get"
// form also offers passkeys in the autofill of the email field (conditional mediation).
(() => {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  const decode = (text) => {
    const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  };
  const encode = (buffer) => {
    if (!buffer) {
      return null;
    }
    let binary = '';
    for (const byte of new Uint8Array(buffer)) {
      binary += String.fromCharCode(byte);
    }
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };

  // WebAuthn JSON (base64url strings) to what navigator.credentials takes (buffers).
  const creationOptions = (json) => {
    const options = json.publicKey;
    options.challenge = decode(options.challenge);
    options.user.id = decode(options.user.id);
    for (const credential of options.excludeCredentials || []) {
      credential.id = decode(credential.id);
    }
    return options;
  };
  const requestOptions = (json) => {
    const options = json.publicKey;
    options.challenge = decode(options.challenge);
    for (const credential of options.allowCredentials || []) {
      credential.id = decode(credential.id);
    }
    return options;
  };

  // And the answer back to WebAuthn JSON.
  const registrationJson = (credential) => ({
    id: credential.id,
    rawId: encode(credential.rawId),
    type: credential.type,
    response: {
      attestationObject: encode(credential.response.attestationObject),
      clientDataJSON: encode(credential.response.clientDataJSON),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
    extensions: credential.getClientExtensionResults(),
  });
  const assertionJson = (credential) => ({
    id: credential.id,
    rawId: encode(credential.rawId),
    type: credential.type,
    response: {
      authenticatorData: encode(credential.response.authenticatorData),
      clientDataJSON: encode(credential.response.clientDataJSON),
      signature: encode(credential.response.signature),
      userHandle: encode(credential.response.userHandle),
    },
    extensions: credential.getClientExtensionResults(),
  });

  const say = (form, message) => {
    const place = form.querySelector('[data-passkey-error]');
    if (place) {
      place.textContent = message;
      place.hidden = false;
    }
  };

  const options = async (form) => {
    if (form.dataset.options) {
      return JSON.parse(form.dataset.options);
    }
    const response = await fetch(form.dataset.optionsUrl, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: form.elements.csrf_token.value }),
    });
    if (!response.ok) {
      throw new Error('options');
    }
    return response.json();
  };

  const finish = (form, ceremony, credential) => {
    form.elements.ceremony.value = ceremony;
    form.elements.credential.value = JSON.stringify(credential);
    form.submit();
  };

  const problem = (error) => {
    if (error && error.name === 'NotAllowedError') {
      return 'The passkey request was cancelled or timed out. Try again, or use another way.';
    }
    if (error && error.name === 'InvalidStateError') {
      return 'This device already holds a passkey for your account.';
    }
    if (error && error.name === 'SecurityError') {
      return 'Passkeys cannot be used at this address. Open the sign-in page at its usual address.';
    }
    return 'Passkeys did not work this time. Try again, or use another way.';
  };

  // The autofill request waiting on the email field, if any: a dialog replaces it.
  let autofill = null;

  const run = async (form) => {
    if (autofill) {
      autofill.controller.abort();
      await autofill.settled;
      autofill = null;
    }
    try {
      const json = await options(form);
      if (form.dataset.passkey === 'create') {
        const credential = await navigator.credentials.create({ publicKey: creationOptions(json) });
        finish(form, json.ceremony, registrationJson(credential));
      } else {
        const credential = await navigator.credentials.get({ publicKey: requestOptions(json) });
        finish(form, json.ceremony, assertionJson(credential));
      }
    } catch (error) {
      say(form, problem(error));
    }
  };

  const offerInAutofill = async (form) => {
    const available = PublicKeyCredential.isConditionalMediationAvailable
      && await PublicKeyCredential.isConditionalMediationAvailable();
    if (!available) {
      return;
    }
    const controller = new AbortController();
    const settled = (async () => {
      try {
        const json = await options(form);
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(json),
          mediation: 'conditional',
          signal: controller.signal,
        });
        finish(form, json.ceremony, assertionJson(credential));
      } catch (error) {
        if (!controller.signal.aborted) {
          say(form, problem(error));
        }
      }
    })();
    autofill = { controller, settled };
  };

  for (const element of document.querySelectorAll('[data-needs-webauthn]')) {
    element.hidden = false;
  }
  for (const form of document.querySelectorAll('form[data-passkey]')) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      run(form);
    });
    if (form.dataset.conditional !== undefined) {
      offerInAutofill(form);
    }
  }
})();

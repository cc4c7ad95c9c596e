// Passkeys on the staff pages: adding one ("Your passkeys") and signing in or confirming it's
// you with one (the sign-in, security code and confirm pages).
//
// Each form marked data-passkey="register" or "sign-in" names where its options come from
// (data-options). On submit this script asks for them (a POST with the form's CSRF token),
// hands them to navigator.credentials.create or .get, puts the browser's answer as JSON in
// the form's hidden "credential" field and sends the form: the node checks the answer and
// answers with a page, as for any form. If the browser's prompt is cancelled or fails, the
// form is sent without an answer and the page says so.
//
// Loaded as a module from /assets/ (the pages' Content Security Policy allows no inline
// script). Without JavaScript, or in a browser without passkeys, the passkey parts stay
// hidden (their "hidden" attribute) and every other part of the page works as it is.

/** Bytes from unpadded base64url, as the options carry them. */
function fromBase64url (text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4)
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))
}

/** Unpadded base64url of an ArrayBuffer, as the node reads the answer. */
function toBase64url (buffer) {
  let text = ''
  for (const byte of new Uint8Array(buffer)) {
    text += String.fromCharCode(byte)
  }
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function withIds (descriptors) {
  return (descriptors || []).map((d) => ({ ...d, id: fromBase64url(d.id) }))
}

/** The options of navigator.credentials.create from the node's JSON. */
function creationOptions (options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: withIds(options.excludeCredentials)
  }
}

/** The options of navigator.credentials.get from the node's JSON. */
function requestOptions (options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: withIds(options.allowCredentials)
  }
}

/** The browser's answer as the JSON WebAuthn defines for it (what the node reads). */
function answerJSON (credential) {
  const response = credential.response
  const common = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults()
  }
  if (response.attestationObject) {
    return {
      ...common,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : []
      }
    }
  }
  return {
    ...common,
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined
    }
  }
}

async function ask (form) {
  const body = new URLSearchParams()
  body.set('csrf_token', form.elements.csrf_token.value)
  if (form.elements.name) {
    body.set('name', form.elements.name.value)
  }
  const reply = await fetch(form.dataset.options, {
    method: 'POST',
    body,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' }
  })
  if (!reply.ok) {
    throw new Error('The node refused the options')
  }
  const options = await reply.json()
  const credential = form.dataset.passkey === 'register'
    ? await navigator.credentials.create({ publicKey: creationOptions(options) })
    : await navigator.credentials.get({ publicKey: requestOptions(options) })
  return JSON.stringify(answerJSON(credential))
}

function enhance (form) {
  const button = form.querySelector('button[type="submit"]')
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (button) {
      button.disabled = true
    }
    try {
      form.elements.credential.value = await ask(form)
    } catch {
      // Cancelled, timed out or refused: the node's page says what to do next.
      form.elements.credential.value = ''
    }
    form.submit()
  })
}

function start () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return
  }
  for (const element of document.querySelectorAll('[data-passkey-only]')) {
    element.hidden = false
  }
  for (const element of document.querySelectorAll('[data-passkey-missing]')) {
    element.hidden = true
  }
  for (const form of document.querySelectorAll('form[data-passkey]')) {
    if (form.dataset.enhanced !== 'true') {
      form.dataset.enhanced = 'true'
      enhance(form)
    }
  }
}

start()

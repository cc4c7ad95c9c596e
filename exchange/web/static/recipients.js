// The recipients page's autocomplete: GOV.UK's accessible autocomplete over the select of
// organisations (id "f-org"), so that typing part of a name or a code ("front door", "356",
// "X26") finds one. The library matches on the options' text, which names each code.
//
// Loaded as a module with the page's CSP nonce, after the library's own script (which sets
// window.accessibleAutocomplete). Without JavaScript, or if the library did not load, the
// plain select and the search work as they are.

const ASSISTIVE_HINT =
  'When results are available use up and down arrows to review and enter to select. ' +
  'Touch device users, explore by touch or with swipe gestures.'

/** The text as HTML: the library puts each suggestion into the list as markup. */
function escapeHtml (text) {
  const span = document.createElement('span')
  span.textContent = String(text)
  return span.innerHTML
}

function enhance () {
  const select = document.getElementById('f-org')
  const autocomplete = window.accessibleAutocomplete
  if (!(select instanceof HTMLSelectElement) || typeof autocomplete !== 'function') {
    return
  }
  const hint = document.getElementById('f-org-hint')
  autocomplete.enhanceSelectElement({
    selectElement: select,
    defaultValue: '',
    minLength: 2,
    templates: { suggestion: escapeHtml },
    tNoResults: () => 'No organisation found',
    // The library's input takes over the select's id (so the label and the error summary's
    // link lead to it) but not its aria-describedby: it says the page's hint instead.
    tAssistiveHint: () => (hint ? hint.textContent.trim() + '. ' : '') + ASSISTIVE_HINT
  })
  // What the box shows when the form is sent is what is chosen: a box emptied or typed over
  // with no organisation's name chooses none, so the page asks again rather than guessing.
  select.form.addEventListener('submit', () => {
    const input = document.getElementById('f-org')
    const text = input instanceof HTMLInputElement ? input.value.trim() : ''
    const option = Array.from(select.options).find((o) => o.value && o.textContent === text)
    select.value = option ? option.value : ''
  })
}

enhance()

// Pages are cloned from the <template>s of index.html; customer data only ever goes in as
// text (textContent), never as HTML.

// Replaces the view's content with the page; returns the page's root element, which a late
// answer can still write to harmlessly once another page has replaced it.
export function mountPage(view, templateId) {
  const page = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
  view.replaceChildren(page);
  return page;
}

export function part(root, name) {
  return root.querySelector(`[data-${name}]`);
}

export function setField(root, field, text) {
  const element = root.querySelector(`[data-field="${field}"]`);
  if (element) element.textContent = text;
}

export function showMessage(element, text, { focus = true } = {}) {
  element.textContent = text;
  element.hidden = false;
  if (focus) element.focus();
}

export function hideMessage(element) {
  element.hidden = true;
  element.textContent = '';
}

// In-page navigation: pages call navigate(); app.js renders the route.

let flashMessage = null;

export function navigate(url, { replace = false, flash = null } = {}) {
  flashMessage = flash;
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  window.dispatchEvent(new Event('hub:navigate'));
}

// A one-time message for the next page ("The video was deleted.").
export function takeFlash() {
  const f = flashMessage;
  flashMessage = null;
  return f;
}

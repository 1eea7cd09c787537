// Copy buttons: <button data-copy="#selector" data-copied="Copied">. No framework, no build.
// The confirmation goes to the page's one live region (#live, present from the start, so
// screen readers announce it), and a hidden source is shown only for the fallback copy.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.value !== undefined ? source.value : source.textContent;
  try {
    await navigator.clipboard.writeText(text.trim());
  } catch (err) {
    if (source.select) {
      const wasHidden = source.hidden;
      source.hidden = false;
      source.select();
      document.execCommand("copy");
      source.hidden = wasHidden;
      button.focus();
    }
  }
  const done = button.dataset.copied || "Copied";
  const live = document.getElementById("live");
  if (live) { live.textContent = ""; setTimeout(() => { live.textContent = done; }, 50); }
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = done;
  setTimeout(() => { button.textContent = button.dataset.label; }, 2000);
});

// Forms with data-confirm ask first (deleting an endpoint, rotating its secret).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

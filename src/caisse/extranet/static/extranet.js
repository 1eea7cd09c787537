// Copy buttons: <button data-copy="#selector" data-copied="Copied">. No framework, no build.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.value !== undefined ? source.value : source.textContent;
  try {
    await navigator.clipboard.writeText(text.trim());
  } catch (err) {
    if (source.select) { source.hidden = false; source.select(); document.execCommand("copy"); }
  }
  const label = button.textContent;
  button.textContent = button.dataset.copied || "Copied";
  button.setAttribute("aria-live", "polite");
  setTimeout(() => { button.textContent = label; }, 2000);
});

// Forms with data-confirm ask first (deleting an endpoint, rotating its secret).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

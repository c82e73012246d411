// Progressive enhancement only: every page works without this file.
document.querySelectorAll("button.copy").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copyTarget);
    const note = button.parentElement.querySelector(".copied");
    try {
      await navigator.clipboard.writeText(field.value);
      note.textContent = "Copied.";
    } catch (err) {
      field.select();
      note.textContent = "Select the key and copy it.";
    }
  });
});

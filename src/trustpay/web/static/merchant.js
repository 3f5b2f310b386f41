// "Copy" next to a secret shown once. Only a convenience: the secret is also
// plain text on the page, selectable by hand where the clipboard API is absent.
(function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) return;
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = button.getAttribute("data-copied");
      });
    });
  });
})();

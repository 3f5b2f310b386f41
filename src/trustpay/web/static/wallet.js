// The undo button's countdown. Only a hint: the server decides whether the
// window is still open (a late undo is answered with "too late").
(function () {
  var shown = document.querySelector("[data-undo-left]");
  if (!shown) return;
  var ends = Date.now() + parseInt(shown.getAttribute("data-undo-left"), 10) * 1000;
  var timer = setInterval(function () {
    var left = Math.max(0, Math.ceil((ends - Date.now()) / 1000));
    shown.textContent = String(left);
    if (left === 0) {
      clearInterval(timer);
      // Show the transfer as the server now sees it.
      setTimeout(function () { window.location.reload(); }, 1200);
    }
  }, 250);
})();

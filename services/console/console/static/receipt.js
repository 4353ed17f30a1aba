// The receipt's print buttons: A4 or a 58/80 mm slip (the `slip` class switches the print styles).
// A file, not onclick attributes: the console's Content-Security-Policy runs no inline script.
(function () {
  var receipt = document.getElementById("receipt");
  if (!receipt) return;
  document.querySelectorAll("button[data-print]").forEach(function (button) {
    button.addEventListener("click", function () {
      receipt.classList.toggle("slip", button.getAttribute("data-print") === "slip");
      window.print();
    });
  });
})();

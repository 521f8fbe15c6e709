// Montecarlo Cloud: behaviour shared by every page (no inline script is allowed by the CSP).
// Pages work without it; it only adds conveniences.
(function () {
  "use strict";
  // A button with data-confirm asks before its form is submitted.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var message = (button && button.getAttribute("data-confirm")) ||
      event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
  // Dismissible banners.
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target instanceof Element && target.matches("[data-dismiss]")) {
      var banner = target.closest(".banner");
      if (banner) banner.remove();
    }
  });
})();

// API keys page: copy the new secret to the clipboard (without JS the text is selectable).
(function () {
  "use strict";
  var input = document.getElementById("new-secret");
  if (!input) return;
  input.addEventListener("focus", function () { input.select(); });
  var button = document.querySelector("[data-copy-target]");
  var status = document.getElementById("copy-status");
  if (!button || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(input.value).then(function () {
      if (status) status.textContent = "Copied to the clipboard.";
    }, function () {
      input.select();
      if (status) status.textContent = "Copy failed: the text is selected, press Ctrl+C.";
    });
  });
})();

// New simulation form: mirror the correlation matrix's upper triangle into the lower one and
// show only the inputs of the chosen model. The form works without it.
(function () {
  "use strict";
  document.querySelectorAll(".corr-input").forEach(function (input) {
    input.addEventListener("input", function () {
      document.querySelectorAll('[data-mirror="' + input.id + '"]').forEach(function (cell) {
        cell.textContent = input.value;
      });
    });
  });
  var model = document.getElementById("model");
  if (!model) return;
  function sync() {
    document.querySelectorAll("[data-model]").forEach(function (field) {
      var show = field.getAttribute("data-model").split(" ").indexOf(model.value) >= 0;
      field.hidden = !show && !field.classList.contains("field-invalid");
    });
  }
  model.addEventListener("change", sync);
  sync();
})();

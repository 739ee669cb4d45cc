// The copy button of the page that shows a new key once. No other script.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy");
  if (!button) return;
  button.addEventListener("click", function () {
    var field = document.getElementById(button.dataset.copy);
    navigator.clipboard.writeText(field.value).then(function () {
      document.getElementById("copied").hidden = false;
    });
  });
});

// The copy button of the page that shows a new key once, and that page
// forgetting the key when it is left, so that Back (from the browser's
// back/forward cache) does not show it again. No other script.
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
window.addEventListener("pagehide", function () {
  var field = document.getElementById("rawkey");
  if (field) {
    field.value = "";
    var banner = field.closest(".banner");
    if (banner) banner.textContent = "The key was shown once and is gone from this page.";
  }
});
window.addEventListener("pageshow", function (event) {
  if (event.persisted && document.getElementById("rawkey") === null && document.querySelector(".banner")) {
    window.location.replace("/keys");
  }
});

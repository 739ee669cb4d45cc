// The console's only script, served from its own origin (the CSP allows
// no other). Every page works without it; with it:
//   - the page that shows a new key once has a copy button, and forgets
//     the key when it is left, so that Back (from the browser's
//     back/forward cache) does not show it again;
//   - the Add form shows a class's roles as soon as the class is chosen,
//     shows the scopes of the chosen role only, and starts its time zone
//     at the browser's.
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("copy");
  if (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.copy);
      navigator.clipboard.writeText(field.value).then(function () {
        document.getElementById("copied").hidden = false;
      });
    });
  }

  // In the Add and Edit forms, the chosen role's scopes are shown.
  document.querySelectorAll("form").forEach(function (f) {
    var roles = f.querySelectorAll(".role");
    var mark = function () {
      roles.forEach(function (role) {
        role.classList.toggle("chosen", role.querySelector("input[type=radio]").checked);
      });
    };
    roles.forEach(function (role) {
      role.querySelector("input[type=radio]").addEventListener("change", mark);
    });
    mark();
  });
  var form = document.getElementById("new-key");
  if (!form) return;
  var choose = document.getElementById("choose-class");
  var classSelect = document.getElementById("class");
  if (choose && classSelect) {
    choose.hidden = true;
    classSelect.addEventListener("change", function () {
      form.requestSubmit(choose);
    });
  }
  var zone = document.getElementById("zone");
  if (zone && zone.hasAttribute("data-browser-zone")) {
    try {
      var browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (browserZone) zone.value = browserZone;
    } catch (e) { /* keep UTC */ }
  }
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

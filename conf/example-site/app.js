// Shows that static scripts come through the edge too, and when this copy was loaded.
(function () {
  var el = document.getElementById("status");
  if (el) {
    el.textContent = "Script loaded from the edge at " + new Date().toLocaleTimeString() + ".";
  }
})();

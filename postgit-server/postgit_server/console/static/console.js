// Live parts (elements with data-live) are long polls: the server answers when what they show changed, or with
// 204 after a while. A 200 replaces the element, whose "load" trigger asks again; after a 204 the same element
// asks again at once; after a failure (the server or the database away) it asks again in a few seconds.
(function () {
  var RETRY_MS = 5000;
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live")) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (event.detail.successful && status !== 204) return;  // swapped: the new element asks again
    if (status >= 400 && status < 500) return;  // gone or refused: asking again would not help
    var delay = event.detail.successful ? 0 : RETRY_MS;
    setTimeout(function () {
      if (elt.isConnected) htmx.trigger(elt, "postgit:again");
    }, delay);
  });
})();

// A live part's new content keeps which of its steps (and other <details> with an id) the reader opened or closed:
// each takes the state its namesake (same run and attempt, or same id) had before the swap. New ones keep their
// own default; the details inside a step (a JSON value's levels) start from theirs again.
(function () {
  var remembered = {};

  function keyed(root) {
    var keys = {};
    root.querySelectorAll("details[data-run], details[id]").forEach(function (details) {
      var key = details.hasAttribute("data-run")
        ? "step:" + details.getAttribute("data-run") + "/" + details.getAttribute("data-attempt")
        : "id:" + details.id;
      keys[key] = details;
    });
    return keys;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live") || !elt.id) return;
    var states = {};
    var found = keyed(elt);
    Object.keys(found).forEach(function (key) { states[key] = found[key].open; });
    remembered[elt.id] = states;
  });

  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.id || !remembered[elt.id]) return;
    var states = remembered[elt.id];
    delete remembered[elt.id];
    var found = keyed(elt);
    Object.keys(found).forEach(function (key) {
      if (key in states) found[key].open = states[key];
    });
  });
})();

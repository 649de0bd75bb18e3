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

// Live board (progressive enhancement): fetch the board's live fragment every 2 s and swap it in.
// Without scripts the page is the same board, fresh at every reload. No framework.
(function () {
  var live = document.getElementById("board-live");
  if (!live || !window.fetch) return;
  var busy = false;
  function editing() {  // never replace a form someone is typing in
    var el = document.activeElement;
    return el && live.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }
  function refresh() {
    if (busy || editing() || document.hidden) return;
    busy = true;
    fetch(live.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && !editing()) live.innerHTML = html; })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();

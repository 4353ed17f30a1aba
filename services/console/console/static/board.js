// Live board (progressive enhancement): fetch the board's live fragment every 2 s and swap it in.
// Without scripts the page is the same board, fresh at every reload. No framework.
(function () {
  var live = document.getElementById("board-live");
  if (!live || !window.fetch) return;
  var busy = false;
  function changed(el) {  // a control whose value is no longer the one the page came with
    if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
    if (el.tagName === "SELECT") {
      var first = -1;
      for (var i = 0; i < el.options.length; i++) if (el.options[i].defaultSelected) first = i;
      return el.selectedIndex !== (first < 0 ? 0 : first);
    }
    return el.value !== el.defaultValue;
  }
  function editing() {
    // Never replace a form someone is in or has started filling: a picked target, a ticked box or
    // typed text would be lost before its button is pressed (focus leaves a select once chosen).
    var el = document.activeElement;
    if (el && live.contains(el) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(el.tagName)) return true;
    return Array.prototype.some.call(live.querySelectorAll("input, select, textarea"), changed);
  }
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(live.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && !editing()) live.innerHTML = html; })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();

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
  // Swap the fragment in, keeping the thumbnails already shown: photos are served `no-store` and
  // each read is an audit record, so an image whose address is unchanged is moved into the new
  // fragment, not fetched again every 2 s. The new HTML is parsed in a <template> (inert: nothing
  // loads there); only images new to the board load.
  function swap(html) {
    var kept = {};
    Array.prototype.forEach.call(live.querySelectorAll("img[src]"), function (img) {
      (kept[img.getAttribute("src")] = kept[img.getAttribute("src")] || []).push(img);  // one address may be in two lists
    });
    var parsed = document.createElement("template");
    parsed.innerHTML = html;
    var places = [];
    Array.prototype.forEach.call(parsed.content.querySelectorAll("img[src]"), function (img) {
      var old = (kept[img.getAttribute("src")] || []).shift();
      if (!old) return;
      var place = document.createComment("kept image");
      img.parentNode.replaceChild(place, img);
      places.push([place, old]);
    });
    live.replaceChildren(parsed.content);  // adopted into the page: the new images load now
    places.forEach(function (pair) { pair[0].parentNode.replaceChild(pair[1], pair[0]); });
  }
  function refresh() {
    if (busy || editing() || document.hidden) return;
    busy = true;
    fetch(live.getAttribute("data-src"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && !editing()) swap(html); })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();

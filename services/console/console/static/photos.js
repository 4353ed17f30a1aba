// Photos chosen in a form (issue #29) are made smaller in the browser before they are sent, so a
// village station's 4G connection carries a filing: each photo turned upright by its EXIF
// orientation and re-encoded as a JPEG at most 2048 px on its longer side, quality 0.85 (a 12 MP
// phone photo of 5 MB becomes about 0.5 MB). The service still checks, cleans and strips every
// photo: this only saves the upload. Progressive enhancement: without this script, or in a browser
// that cannot decode a photo (HEIC outside Safari) or replace a file input's files, the photo is
// sent as chosen. A file, not inline: the console's Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  var MAX_SIDE = 2048;
  var QUALITY = 0.85;
  var inputs = document.querySelectorAll('input[type="file"][name="photos"]');
  if (!inputs.length || typeof createImageBitmap !== "function" || typeof DataTransfer !== "function") return;

  function jpegName(name) {
    return (name.replace(/\.[^.]*$/, "") || "photo") + ".jpg";
  }

  // One photo made smaller, or the file itself when it cannot be or need not be.
  function smaller(file) {
    if (file.type && file.type.indexOf("image/") !== 0) return Promise.resolve(file);
    return createImageBitmap(file, {imageOrientation: "from-image"}).then(function (bitmap) {
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      var context = canvas.getContext("2d");
      context.imageSmoothingQuality = "high";
      context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      if (bitmap.close) bitmap.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          // A photo already small (and upright) is sent as it is when the copy would be no smaller.
          resolve(blob && blob.size < file.size
            ? new File([blob], jpegName(file.name), {type: "image/jpeg", lastModified: file.lastModified})
            : file);
        }, "image/jpeg", QUALITY);
      });
    }).catch(function () { return file; });
  }

  // The input's photos made smaller one after another (a phone's memory holds one decoded photo).
  function shrink(input) {
    var files = Array.prototype.slice.call(input.files || []);
    var done = [];
    var chain = Promise.resolve();
    files.forEach(function (file) {
      chain = chain.then(function () { return smaller(file); }).then(function (small) { done.push(small); });
    });
    return chain.then(function () {
      if (!files.length || done.every(function (f, i) { return f === files[i]; })) return;
      try {
        var transfer = new DataTransfer();
        done.forEach(function (f) { transfer.items.add(f); });
        input.files = transfer.files;  // setting files fires no change event: no loop
      } catch (e) { /* the originals are sent */ }
    });
  }

  inputs.forEach(function (input) {
    var form = input.form;
    var hint = document.getElementById(input.getAttribute("aria-describedby") || "");
    input.addEventListener("change", function () {
      var status = form.querySelector("[data-photo-status]");
      if (status) status.textContent = "正在缩小照片……";
      input.pending = shrink(input).then(function () {
        if (status) status.textContent = "";
        input.pending = null;
      });
    });
    // A form sent while its photos are still being made smaller waits for them, then goes.
    form.addEventListener("submit", function (event) {
      if (!input.pending) return;
      event.preventDefault();
      var submitter = event.submitter;
      input.pending.then(function () {
        if (submitter && submitter.name) {
          var pressed = document.createElement("input");
          pressed.type = "hidden";
          pressed.name = submitter.name;
          pressed.value = submitter.value;
          form.appendChild(pressed);
        }
        form.submit();
      });
    });
    // The filing form: how many photos the item typed takes (the town's catalog).
    var limits = input.getAttribute("data-photos-max");
    var item = form.querySelector('input[name="item_code"]');
    if (!limits || !item || !hint) return;
    var max = JSON.parse(limits);
    var general = hint.getAttribute("data-default");
    var follow = function () {
      var n = max[item.value.trim()];
      input.disabled = n === 0;
      hint.textContent = n === 0 ? "本事项不收照片。"
        : n ? "本事项最多可附 " + n + " 张照片；上传前自动缩小，位置等信息由系统清除后保存。" : general;
    };
    item.addEventListener("input", follow);
    item.addEventListener("change", follow);
  });
})();

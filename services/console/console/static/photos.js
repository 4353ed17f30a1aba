// Photos chosen in a form (issue #29) are made smaller in the browser before they are sent, so a
// village station's 4G connection carries a filing: each photo turned upright by its EXIF
// orientation and re-encoded as a JPEG at most 2048 px on its longer side, quality 0.85 (a 12 MP
// phone photo of 5 MB becomes about 0.5 MB), a JPEG's EXIF carried over (orientation 1) so the
// service still reads when and where it was taken. The service still checks, cleans and strips
// every photo: this only saves the upload. Progressive enhancement: without this script, or in a browser
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

  // The original JPEG's EXIF segment (APP1), its orientation set to 1 (the copy is upright already),
  // or null. Carried onto the copy so intake still learns when and where the photo was taken: it
  // keeps that in its own database and stores the photo without any metadata.
  function exifOf(buffer) {
    var bytes = new DataView(buffer);
    if (bytes.byteLength < 4 || bytes.getUint16(0) !== 0xFFD8) return null;
    var at = 2;
    while (at + 10 <= bytes.byteLength) {
      var marker = bytes.getUint16(at);
      if ((marker & 0xFF00) !== 0xFF00 || marker === 0xFFDA) return null;  // the image data: no EXIF before it
      var length = bytes.getUint16(at + 2);
      if (marker === 0xFFE1 && bytes.getUint32(at + 4) === 0x45786966 && bytes.getUint16(at + 8) === 0) {
        var segment = buffer.slice(at, at + 2 + length);
        upright(new DataView(segment), 10);  // the TIFF header follows "Exif\0\0"
        return segment;
      }
      at += 2 + length;
    }
    return null;
  }

  // IFD0's Orientation (tag 0x0112) set to 1, so nothing turns the upright copy again.
  function upright(view, tiff) {
    var little = view.getUint16(tiff) === 0x4949;
    var ifd = tiff + view.getUint32(tiff + 4, little);
    if (ifd + 2 > view.byteLength) return;
    for (var i = 0, n = view.getUint16(ifd, little); i < n; i++) {
      var entry = ifd + 2 + i * 12;
      if (entry + 12 > view.byteLength) return;
      if (view.getUint16(entry, little) === 0x0112) view.setUint16(entry + 8, 1, little);
    }
  }

  // The copy with the EXIF segment put after its JFIF header (or its start of image).
  function withExif(blob, exif) {
    if (!exif) return Promise.resolve(blob);
    return blob.slice(0, 6).arrayBuffer().then(function (head) {
      var view = new DataView(head);
      var at = view.getUint16(2) === 0xFFE0 ? 4 + view.getUint16(4) : 2;
      return new Blob([blob.slice(0, at), exif, blob.slice(at)], {type: "image/jpeg"});
    }).catch(function () { return blob; });
  }

  function exifOfFile(file) {
    if (file.type !== "image/jpeg" || !file.arrayBuffer) return Promise.resolve(null);
    return file.arrayBuffer().then(exifOf).catch(function () { return null; });
  }

  // One photo made smaller, or the file itself when it cannot be or need not be.
  function smaller(file) {
    if (file.type && file.type.indexOf("image/") !== 0) return Promise.resolve(file);
    return Promise.all([createImageBitmap(file, {imageOrientation: "from-image"}), exifOfFile(file)]).then(function (got) {
      var bitmap = got[0], exif = got[1];
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      var context = canvas.getContext("2d");
      context.imageSmoothingQuality = "high";
      context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      if (bitmap.close) bitmap.close();
      return new Promise(function (resolve) {
        canvas.toBlob(resolve, "image/jpeg", QUALITY);
      }).then(function (blob) {
        return blob ? withExif(blob, exif) : null;
      }).then(function (copy) {
        // A photo already small (and upright) is sent as it is when the copy would be no smaller.
        return copy && copy.size < file.size
          ? new File([copy], jpegName(file.name), {type: "image/jpeg", lastModified: file.lastModified})
          : file;
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

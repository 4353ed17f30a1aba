// The filing form's point picker (issue #30): a click on the town's map (an SVG drawn by the
// console, console/town_map.py) sets the point's longitude and latitude, by the map's own
// projection inverted (its numbers are the SVG's data- attributes); or the phone's position
// (navigator.geolocation, offered only where the browser has it). Picking a point sets the
// village to 按标注位置确定: intake finds it from the point. Without this script the two inputs
// are typed. A file, not inline: the console's Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  var svg = document.querySelector("svg[data-picker]");
  if (!svg) return;
  var form = svg.closest("form");
  var longitude = form.querySelector('input[name="point.longitude"]');
  var latitude = form.querySelector('input[name="point.latitude"]');
  var village = form.querySelector('select[name="village"]');
  var status = form.querySelector("[data-point-status]");
  var mark = svg.querySelector("[data-picked]");
  var west = parseFloat(svg.getAttribute("data-west"));
  var north = parseFloat(svg.getAttribute("data-north"));
  var kx = parseFloat(svg.getAttribute("data-kx"));
  var ky = parseFloat(svg.getAttribute("data-ky"));

  function show() {
    var lon = parseFloat(longitude.value), lat = parseFloat(latitude.value);
    if (isNaN(lon) || isNaN(lat)) {
      mark.setAttribute("visibility", "hidden");
      return;
    }
    mark.setAttribute("cx", ((lon - west) * kx).toFixed(1));
    mark.setAttribute("cy", ((north - lat) * ky).toFixed(1));
    mark.setAttribute("visibility", "visible");
  }

  function pick(lon, lat, words) {
    longitude.value = lon.toFixed(6);  // about 0.1 m: finer than any phone's position
    latitude.value = lat.toFixed(6);
    if (village && village.querySelector('option[value=""]')) village.value = "";
    show();
    status.textContent = words;
  }

  svg.addEventListener("click", function (event) {
    var at = svg.createSVGPoint();
    at.x = event.clientX;
    at.y = event.clientY;
    var p = at.matrixTransform(svg.getScreenCTM().inverse());
    pick(west + p.x / kx, north - p.y / ky, "已在地图上标注位置（经度 " + (west + p.x / kx).toFixed(5) +
         "，纬度 " + (north - p.y / ky).toFixed(5) + "）");
  });
  longitude.addEventListener("change", show);
  latitude.addEventListener("change", show);
  show();

  var here = form.querySelector("[data-geolocate]");
  if (here && navigator.geolocation) {
    here.hidden = false;
    here.addEventListener("click", function () {
      status.textContent = "正在获取当前位置……";
      navigator.geolocation.getCurrentPosition(function (position) {
        pick(position.coords.longitude, position.coords.latitude,
             "已使用手机定位（精度约 " + Math.round(position.coords.accuracy) + " 米）");
      }, function () {
        status.textContent = "无法获取当前位置，请在地图上点选。";
      }, {enableHighAccuracy: true, timeout: 10000, maximumAge: 60000});
    });
  }
})();

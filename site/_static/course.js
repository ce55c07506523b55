/* Course website: draw each plotly figure (course-plotly div + its JSON) with the site's plotly.js when it
   comes near the viewport, and free the WebGL context of a 3D figure that is far from it (Chromium keeps at
   most 16 live WebGL contexts per page; a lecture can have more 3D figures than that). */
(function () {
  "use strict";
  var GL = /3d|gl|mesh3d|surface|volume|isosurface|cone|streamtube/;
  function figure(div) {
    var src = document.getElementById(div.id + "-json");
    return src ? JSON.parse(src.textContent) : null;
  }
  function render(div) {
    if (div.dataset.rendered === "1" || !window.Plotly) return;
    var fig = figure(div);
    if (!fig) return;
    div.dataset.rendered = "1";
    div.dataset.gl = fig.data.some(function (t) { return GL.test(t.type || ""); }) ? "1" : "0";
    window.Plotly.newPlot(div, fig.data, fig.layout, {responsive: true});
  }
  function purge(div) {
    if (div.dataset.rendered !== "1" || div.dataset.gl !== "1") return;
    window.Plotly.purge(div);
    div.dataset.rendered = "0";
  }
  function init() {
    var divs = Array.prototype.slice.call(document.querySelectorAll("div.course-plotly"));
    if (!divs.length) return;
    if (!("IntersectionObserver" in window)) { divs.forEach(render); return; }
    var near = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) render(e.target); });
    }, {rootMargin: "600px 0px"});
    var far = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (!e.isIntersecting) purge(e.target); });
    }, {rootMargin: "3000px 0px"});
    divs.forEach(function (d) { near.observe(d); far.observe(d); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Loaded between require.js and embed-amd.js (see _config.yml, nb_ipywidgets_js).
(function () {
  // 1. The ipywidgets HTML manager finds its icon fonts next to the URL of its AMD module:
  //    map that module to this folder so the fonts are served from the book.
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.__jupyter_widgets_assets_path__ = here;
  if (window.require && window.require.config) {
    window.require.config({paths: {"@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "")}});
  }
  // 2. The widget controls typeset their labels with the MathJax 2 call
  //    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); this page has MathJax 3, where
  //    that call is a TypeError. Give it a MathJax 3 equivalent once MathJax is loaded
  //    (MathJax is a deferred script, so it has run before DOMContentLoaded).
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || !mj.version || mj.Hub) return;
    mj.Hub = {Queue: function (job) {
      var el = job && job[2];
      var ready = mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
      ready.then(function () { return el && mj.typesetPromise ? mj.typesetPromise([el]) : null; })
           .catch(function (err) { console.warn("MathJax typeset of a widget failed", err); });
    }};
  });
})();

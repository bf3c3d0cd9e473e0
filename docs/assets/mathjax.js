// MathJax for pymdownx.arithmatex (generic mode): \( \) inline and \[ \] display math, as Material for MkDocs
// documents; re-typeset on each page of the instant navigation.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"}
};
if (typeof document$ !== "undefined") {
  document$.subscribe(() => { MathJax.startup.output.clearCache(); MathJax.typesetClear(); MathJax.texReset();
                              MathJax.typesetPromise(); });
}

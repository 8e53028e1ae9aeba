// clml book: display equations wider than the text column are scaled down to fit it, as long
// as they stay legible (scale >= MIN_SCALE); wider ones keep their size and scroll inside their
// own box (clml_book.css). Runs once MathJax has typeset the page, and again on resize.
(function () {
    "use strict";
    const MIN_SCALE = 0.6;
    function fit() {
        document.querySelectorAll('mjx-container[display="true"]').forEach(function (box) {
            box.style.fontSize = "";
            box.classList.remove("clml-fitted");
            let scale = 1;
            // the width does not scale exactly with the font size (margins, tags): a few rounds
            for (let round = 0; round < 4; round++) {
                const avail = box.clientWidth;
                const need = box.scrollWidth;
                if (avail <= 0 || need <= avail + 1) break;
                scale *= (avail - 2) / need;
                if (scale < MIN_SCALE) {  // too small to read: full size, scrolling
                    box.style.fontSize = "";
                    box.classList.remove("clml-fitted");
                    break;
                }
                box.style.fontSize = (100 * scale).toFixed(1) + "%";
                box.classList.add("clml-fitted");
            }
        });
    }
    function whenTypeset() {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(fit);
        }
    }
    window.addEventListener("load", whenTypeset);
    let timer = null;
    window.addEventListener("resize", function () {
        clearTimeout(timer);
        timer = setTimeout(fit, 150);
    });
})();

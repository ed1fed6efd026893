// Loads the per-currency totals of the order list in a request of their own, so the list itself
// never waits for a sum over every matching row: at once for a bounded list, on request otherwise.
document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("order-totals");
    if (!box) return;
    function load() {
        fetch(box.dataset.url, {credentials: "same-origin"})
            .then(function (response) {
                if (!response.ok) throw new Error(response.status);
                return response.text();
            })
            .then(function (html) { box.innerHTML = html; })
            .catch(function () { box.classList.add("errornote"); });
    }
    if ("autoload" in box.dataset) {
        load();
    } else {
        const button = document.getElementById("load-totals");
        if (button) button.addEventListener("click", function () { button.disabled = true; load(); });
    }
});

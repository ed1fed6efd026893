// Loads the per-currency totals of the order list in a request of their own, so the list itself
// never waits for a sum over every matching row.
document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("order-totals");
    if (!box) return;
    fetch(box.dataset.url, {credentials: "same-origin"})
        .then(function (response) {
            if (!response.ok) throw new Error(response.status);
            return response.text();
        })
        .then(function (html) { box.innerHTML = html; })
        .catch(function () { box.classList.add("errornote"); });
});

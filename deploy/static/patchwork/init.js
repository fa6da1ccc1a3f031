import { initAll } from "/static/govuk/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();

// Each table cell carries its column's name, shown above the value when a phone's
// stylesheet stacks the table (patchwork.css).
for (const table of document.querySelectorAll("table.govuk-table")) {
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, index) => {
      if (cell.tagName === "TD" && names[index] && !cell.hasAttribute("data-label")) {
        cell.setAttribute("data-label", names[index]);
      }
    });
  }
}

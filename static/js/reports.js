// The reports screen works without this. A span too long to fit scrolls sideways: its charts
// open at the latest days and scroll together, so a day stays in the same place in each.
const boxes = [...document.querySelectorAll(".report-charts.scroll .chart-scroll")];

for (const box of boxes) {
  box.scrollLeft = box.scrollWidth;
  box.addEventListener("scroll", () => {
    for (const other of boxes) {
      if (other !== box && other.scrollLeft !== box.scrollLeft) other.scrollLeft = box.scrollLeft;
    }
  }, { passive: true });
}

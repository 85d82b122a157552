"""The basics of accessibility, checked on a page in a real browser (WCAG 2.1 AA's core).

`problems(driver)` returns what is wrong on the page the driver shows, as
lines a test can assert empty:

- every form control (input but hidden, select, textarea) has a label
  (a `<label for>`, `aria-label` or `aria-labelledby`); every button and
  link has text;
- every image has a text alternative (`<img alt>`; an `<svg>` is
  `role="img"` with a name, or `aria-hidden`);
- the Tab key reaches every visible control, link and button from the top
  of the page (keys sent to the browser, focus read back after each);
- the contrast of every visible text with its background is at least 4.5:1
  (3:1 for large text: 24 px, or 18.66 px bold), computed from the computed
  styles: the text's colour over the backgrounds of its ancestors, composited
  (WCAG 2.1's relative luminance).

The checks run as scripts in the page (WebDriver's, which the page's CSP does
not govern) and as Python; nothing is installed from outside.
"""

from __future__ import annotations

import re
from typing import Any

Rgba = tuple[float, float, float, float]

MISSING_NAMES = """
const out = [];
for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
  const named = el.labels.length || el.getAttribute("aria-label")
    || el.getAttribute("aria-labelledby");
  if (!named) out.push("no label: " + el.outerHTML.slice(0, 120));
}
for (const el of document.querySelectorAll("button, a[href]")) {
  if (!(el.textContent.trim() || el.getAttribute("aria-label")))
    out.push("no text: " + el.outerHTML.slice(0, 120));
}
for (const img of document.querySelectorAll("img")) {
  if (!img.hasAttribute("alt")) out.push("no alt: " + img.outerHTML.slice(0, 120));
}
for (const svg of document.querySelectorAll("svg")) {
  const named = svg.getAttribute("role") === "img" && (svg.getAttribute("aria-label")
    || svg.getAttribute("aria-labelledby"));
  if (!named && svg.getAttribute("aria-hidden") !== "true")
    out.push("svg without a name: " + svg.outerHTML.slice(0, 120));
}
return out;
"""

FOCUSABLE = """
const visible = (el) => {
  const r = el.getBoundingClientRect();
  return r.width > 1 && r.height > 1 && getComputedStyle(el).visibility !== "hidden";
};
const els = [...document.querySelectorAll(
  "a[href], button, input:not([type=hidden]), select, textarea")].filter(
  (el) => !el.disabled && (visible(el) || el.classList.contains("skip")));
els.forEach((el, i) => el.setAttribute("data-a11y", String(i)));
document.activeElement && document.activeElement.blur();
window.scrollTo(0, 0);
return els.map((el) => el.outerHTML.slice(0, 100));
"""

ACTIVE = 'const a = document.activeElement; return a ? a.getAttribute("data-a11y") : null;'

TEXTS = """
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
while (walker.nextNode()) {
  const node = walker.currentNode;
  const el = node.parentElement;
  if (!node.textContent.trim() || !el || seen.has(el)) continue;
  seen.add(el);
  const r = el.getBoundingClientRect();
  if (r.width <= 1 || r.height <= 1 || r.right < 0 || r.bottom < 0) continue;
  const style = getComputedStyle(el);
  if (style.visibility === "hidden" || el.closest("option")) continue;
  const backgrounds = [];
  for (let e = el; e; e = e.parentElement) backgrounds.push(getComputedStyle(e).backgroundColor);
  out.push([node.textContent.trim().slice(0, 40), style.color, backgrounds,
            parseFloat(style.fontSize), parseInt(style.fontWeight, 10)]);
}
return out;
"""

_NUMBERS = re.compile(r"[\d.]+")


def rgba(css: str) -> Rgba:
    """`rgb(r, g, b)` or `rgba(r, g, b, a)` as numbers (channels 0-255, alpha 0-1)."""
    found = [float(n) for n in _NUMBERS.findall(css)]
    assert css.startswith("rgb") and len(found) in (3, 4), f"not an rgb() colour: {css}"
    return (found[0], found[1], found[2], found[3] if len(found) == 4 else 1.0)


def over(top: Rgba, under: Rgba) -> Rgba:
    """`top` composited over an opaque `under`."""
    a = top[3]
    return (*(top[i] * a + under[i] * (1 - a) for i in range(3)), 1.0)  # type: ignore[return-value]


def luminance(colour: Rgba) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i]) for i in range(3))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: Rgba, bg: Rgba) -> float:
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def background(layers: list[str]) -> Rgba:
    """The colour behind an element: its ancestors' backgrounds over a white canvas."""
    result: Rgba = (255.0, 255.0, 255.0, 1.0)
    for layer in reversed(layers):  # from the root down to the element
        result = over(rgba(layer), result)
    return result


def low_contrast(driver: Any) -> list[str]:
    found = []
    for text, colour, layers, size, weight in driver.execute_script(TEXTS):
        bg = background(layers)
        ratio = contrast(over(rgba(colour), bg), bg)
        large = size >= 24 or (size >= 18.66 and weight >= 700)
        if ratio < (3.0 if large else 4.5):
            found.append(f"contrast {ratio:.2f}:1 of {text!r} ({colour} on {bg})")
    return found


def unreachable(driver: Any) -> list[str]:
    """The focusable elements Tab does not reach, going once through the page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    targets = driver.execute_script(FOCUSABLE)
    reached: set[str] = set()
    for _ in range(4 * len(targets) + 10):  # a date field takes a Tab per part
        ActionChains(driver).send_keys(Keys.TAB).perform()
        index = driver.execute_script(ACTIVE)
        if index is not None:
            reached.add(index)
        if len(reached) == len(targets):
            break
    return [f"Tab never reaches: {html}" for i, html in enumerate(targets) if str(i) not in reached]


def problems(driver: Any) -> list[str]:
    """Everything the basics find wrong on the page shown (none: an empty list)."""
    return [*driver.execute_script(MISSING_NAMES), *low_contrast(driver), *unreachable(driver)]

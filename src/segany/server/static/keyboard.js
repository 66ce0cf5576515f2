// Keyboard shortcuts. Keys typed into a text field, a select or the name dialog are left alone.
//
//   Tab / Shift+Tab  next / previous candidate mask      Z / Shift+Z  undo / redo a prompt edit
//   Enter            accept the mask (or the suggestion) Esc          clear the prompts
//   1-9              pick a category                     Delete       delete the selected
//   F                fit the image to the window                       annotation / reject the
//   PageDown/PageUp  next / previous image                             suggestion

import { isTyping } from "./viewer.js";

/**
 * @param {object} actions functions: cycle(step) -> bool, undo(), redo(), clear(), accept(),
 *   pickCategory(index) -> bool, remove() -> bool, fit(), nextImage(step), blocked() -> bool
 *   (a dialog is open). A function that returns false leaves the key to the browser.
 */
export function bindKeys(actions) {
  window.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || isTyping(event.target) || actions.blocked()) return;
    const key = event.key;
    const modifier = event.ctrlKey || event.metaKey || event.altKey;
    // Enter and Space on a focused button or link press it, as usual.
    const onControl = event.target instanceof Element && event.target.closest("button, a");
    let handled = true;
    if (key === "Tab" && !modifier) {
      handled = actions.cycle(event.shiftKey ? -1 : 1);
    } else if (key === "z" || key === "Z") {
      if (event.shiftKey) actions.redo();
      else actions.undo();
    } else if (key === "Escape") {
      actions.clear();
    } else if (key === "Enter" && !onControl && !modifier) {
      actions.accept();
    } else if (/^[1-9]$/.test(key) && !modifier) {
      handled = actions.pickCategory(Number(key) - 1);
    } else if ((key === "Delete" || key === "Backspace") && !modifier) {
      handled = actions.remove();
    } else if ((key === "f" || key === "F") && !modifier) {
      actions.fit();
    } else if (key === "PageDown" || key === "PageUp") {
      actions.nextImage(key === "PageDown" ? 1 : -1);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
}

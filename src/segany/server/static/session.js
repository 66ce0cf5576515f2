// Who is annotating, and the server's token: both kept in localStorage.
//
// The token arrives once in the page's URL (?token=...); it is stored and removed from the
// address bar so that it is not left in screenshots, bookmarks or shared links.

const TOKEN_KEY = "segany.token";
const USER_KEY = "segany.user";
// Printable ASCII: the name travels in an HTTP header (X-Segany-User), which carries Latin-1 at
// most, and the API does not define an encoding for anything else.
const NAME_PATTERN = /^[\x20-\x7e]{1,64}$/;

/** The token from ?token= (stored, then removed from the URL), else the stored one, or "". */
export function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl !== null) {
    if (fromUrl) localStorage.setItem(TOKEN_KEY, fromUrl);
    else localStorage.removeItem(TOKEN_KEY); // ?token= with nothing: forget the token
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function storedUser() {
  return localStorage.getItem(USER_KEY) || "";
}

/** Why `name` cannot be a user name, or "" when it can. */
export function nameProblem(name) {
  if (!name.trim()) return "Enter a name.";
  if (!NAME_PATTERN.test(name.trim())) {
    return "Use up to 64 plain ASCII characters (letters, digits, spaces, punctuation).";
  }
  return "";
}

/**
 * Ask for the user's name in the page's dialog (not window.prompt: that blocks the page).
 * @param {HTMLElement} dialog the dialog's backdrop, holding a form with an input and a message
 * @returns {Promise<string>} the name, stored in localStorage
 */
export function askUserName(dialog) {
  const form = dialog.querySelector("form");
  const input = form.querySelector("input");
  const problem = form.querySelector(".problem");
  input.value = storedUser();
  problem.textContent = "";
  dialog.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const text = nameProblem(input.value);
      if (text) {
        problem.textContent = text;
        return;
      }
      const name = input.value.trim();
      localStorage.setItem(USER_KEY, name);
      form.removeEventListener("submit", submit);
      dialog.hidden = true;
      resolve(name);
    };
    form.addEventListener("submit", submit);
  });
}

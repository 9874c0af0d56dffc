// What the app keeps between visits: the token and the signed-in user's name, in
// localStorage under one key, and nothing else. forget() removes it and reloads the page,
// so nothing read while signed in (feed, profiles, photo URLs) outlives a logOut.

const KEY = "pictograph.session";

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || {};
  } catch {
    return {};
  }
}

const kept = load();

export const session = {
  token: kept.token || null,
  username: kept.username || null,
  endedListeners: [],

  start(token, username) {
    this.token = token;
    this.username = username;
    localStorage.setItem(KEY, JSON.stringify({ token, username }));
  },

  forget(notice) {
    this.token = null;
    localStorage.removeItem(KEY);
    sessionStorage.clear();
    if (notice) sessionStorage.setItem("pictograph.notice", notice);
    window.location.hash = "#/login";
    window.location.reload();
  },

  // The server no longer accepts the token (logged out elsewhere, expired).
  ended() {
    this.forget("Your session has ended. Please log in again.");
  },

  takeNotice() {
    const notice = sessionStorage.getItem("pictograph.notice");
    sessionStorage.removeItem("pictograph.notice");
    return notice;
  },
};

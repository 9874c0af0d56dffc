// Pictograph's reference web client: plain ES modules, no build step. Views are drawn
// from the URL's #fragment; every read goes through the GraphQL API (api.js), photos
// only through the signed `media { url }` it hands out.

import { ApiError, graphql, upload } from "./api.js";
import { connectLive } from "./live.js";
import * as Q from "./queries.js";
import { session } from "./session.js";

const main = document.getElementById("main");
const alertBox = document.getElementById("alert");
const liveBadge = document.getElementById("live");
const TYPES = ["image/jpeg", "image/png", "image/webp"];

// ---- small helpers ---------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

function showAlert(message) {
  alertBox.textContent = message;
  alertBox.hidden = !message;
}

function announce(target, message) {
  target.textContent = message;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function userLink(user) {
  return h("a", { href: `#/u/${encodeURIComponent(user.username)}`, class: "who" },
           h("strong", { text: user.displayName || user.username }),
           h("span", { class: "muted", text: ` @${user.username}` }));
}

// A button that shows its work and says what went wrong next to itself.
function action(label, run, attrs = {}) {
  const button = h("button", { type: "button", ...attrs, text: label });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run();
      showAlert("");
    } catch (error) {
      showAlert(error.message);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function formError() {
  return h("p", { class: "error", role: "alert" });
}

// ---- routing ---------------------------------------------------------------------

let generation = 0; // a view whose data arrives after the person moved on draws nothing
let feedView = null; // the feed while it is on screen, for live events and resyncs

async function route() {
  const mine = ++generation;
  const current = () => mine === generation;
  const path = decodeURIComponent(window.location.hash.slice(1) || "/");
  feedView = null;
  showAlert("");
  signedInChrome(Boolean(session.token));
  markCurrent(path);
  if (!session.token) return loginView(current);
  if (path === "/login") {
    window.location.hash = "#/";
    return undefined;
  }
  try {
    if (path === "/") return await homeView(current);
    if (path.startsWith("/u/")) return await profileView(path.slice(3), current);
    if (path === "/new") return newPostView();
    if (path === "/people") return await peopleView(current);
    if (path === "/settings") return await settingsView(current);
    return draw(h("h1", { text: "Not found" }), h("p", { text: "There is no such page." }));
  } catch (error) {
    if (current()) {
      draw(h("h1", { text: "Something went wrong" }),
           h("p", { class: "error", text: error.message }),
           action("Try again", route));
    }
    return undefined;
  }
}

function draw(...children) {
  main.replaceChildren(...children);
}

function signedInChrome(signedIn) {
  for (const id of ["nav", "find", "live"]) document.getElementById(id).hidden = !signedIn;
  if (signedIn) {
    document.getElementById("nav-me").href = `#/u/${encodeURIComponent(session.username)}`;
  }
}

function markCurrent(path) {
  for (const link of document.querySelectorAll("#nav a")) {
    const target = decodeURIComponent(link.getAttribute("href").slice(1));
    if (target === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// ---- signing in and out ------------------------------------------------------------

function loginView() {
  const logInError = formError();
  const signUpError = formError();
  const signIn = async (event, mutation, input, errorBox) => {
    event.preventDefault();
    const button = event.target.querySelector("button");
    button.disabled = true;
    announce(errorBox, "");
    try {
      const data = await graphql(mutation, { input });
      const payload = data.signUp || data.logIn;
      session.start(payload.token, payload.user.username);
      startLive();
      window.location.hash = "#/";
      if (window.location.hash === "#/") route();
    } catch (error) {
      announce(errorBox, error.message);
    } finally {
      button.disabled = false;
    }
  };
  const field = (id, label, attrs = {}) => [
    h("label", { for: id, text: label }),
    h("input", { id, name: id, required: true, autocapitalize: "none", ...attrs }),
  ];
  draw(
    h("h1", { text: "Share photos with the people you choose" }),
    h("div", { class: "columns" },
      h("form", {
        class: "card", "aria-labelledby": "log-in-title",
        onsubmit: (event) => signIn(event, Q.LOG_IN, {
          username: event.target.elements["log-in-username"].value.trim(),
          password: event.target.elements["log-in-password"].value,
        }, logInError),
      },
        h("h2", { id: "log-in-title", text: "Log in" }),
        field("log-in-username", "Username", { autocomplete: "username" }),
        field("log-in-password", "Password", { type: "password",
                                               autocomplete: "current-password" }),
        logInError,
        h("button", { type: "submit", class: "primary", text: "Log in" })),
      h("form", {
        class: "card", "aria-labelledby": "sign-up-title",
        onsubmit: (event) => signIn(event, Q.SIGN_UP, {
          username: event.target.elements["sign-up-username"].value.trim(),
          displayName: event.target.elements["sign-up-name"].value.trim() || null,
          password: event.target.elements["sign-up-password"].value,
        }, signUpError),
      },
        h("h2", { id: "sign-up-title", text: "Create an account" }),
        field("sign-up-username", "Username", { autocomplete: "username" }),
        field("sign-up-name", "Display name (optional)", { required: false,
                                                          autocomplete: "name" }),
        field("sign-up-password", "Password", { type: "password", minlength: "10",
                                                autocomplete: "new-password",
                                                "aria-describedby": "password-hint" }),
        h("p", { id: "password-hint", class: "muted small",
                 text: "At least 10 characters; a few unrelated words work well." }),
        signUpError,
        h("button", { type: "submit", class: "primary", text: "Sign up" }))),
  );
}

document.getElementById("log-out").addEventListener("click", async () => {
  try {
    await graphql(Q.LOG_OUT);
  } catch {
    // Gone already, or unreachable: the app forgets its side all the same.
  }
  stopLive();
  session.forget();
});

document.getElementById("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.username;
  const name = input.value.trim().replace(/^@/, "");
  if (name) window.location.hash = `#/u/${encodeURIComponent(name)}`;
  input.value = "";
});

// ---- the live connection ----------------------------------------------------------

let stopLiveConnection = null;

function startLive() {
  if (stopLiveConnection) return;
  stopLiveConnection = connectLive({
    document: Q.FEED_UPDATES,
    onEvent: (event) => feedView && feedView.apply(event),
    onStatus: (status) => {
      liveBadge.dataset.status = status;
      liveBadge.textContent = { live: "Live", connecting: "Connecting…",
                                reconnecting: "Reconnecting…" }[status];
    },
    onResync: () => feedView && feedView.resync(),
  });
}

function stopLive() {
  if (stopLiveConnection) stopLiveConnection();
  stopLiveConnection = null;
}

// ---- the home feed -----------------------------------------------------------------

function photo(post) {
  if (!post.media) {
    return h("div", { class: "photo-missing", text: "This photo is not available." });
  }
  const name = post.author ? post.author.displayName || post.author.username : "someone";
  const image = h("img", {
    src: post.media.url, width: post.media.width, height: post.media.height,
    alt: post.caption ? `Photo by ${name}: ${post.caption}` : `Photo by ${name}`,
    loading: "lazy", decoding: "async",
  });
  let refreshed = false;
  image.addEventListener("error", async () => {
    // Photo URLs are signed for a few minutes: one that expired before it came into
    // view is asked for again, once. None at all means the photo is no longer ours to see.
    if (refreshed) return;
    refreshed = true;
    try {
      const data = await graphql(Q.POST_MEDIA, { id: post.id });
      if (data.post && data.post.media) image.src = data.post.media.url;
      else image.closest("article")?.remove();
    } catch {
      // Shown as a broken image; the next page load asks again.
    }
  });
  return image;
}

function postCard(post) {
  return h("article", { class: "post", "data-post-id": post.id },
    h("header", {}, userLink(post.author),
      h("time", { datetime: post.createdAt, class: "muted", text: ago(post.createdAt) })),
    photo(post),
    post.caption ? h("p", { class: "caption", text: post.caption }) : null);
}

async function homeView(current) {
  const list = h("div", { class: "posts", "aria-label": "Posts", role: "feed",
                          "aria-busy": "true" });
  const status = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
  const footer = h("p", { class: "muted center", text: "Loading…" });
  const state = { posts: new Map(), endCursor: null, hasNext: true, loading: false };
  draw(h("h1", { class: "sr-only", text: "Home feed" }), status, list, footer);

  const showFooter = () => {
    if (state.posts.size === 0) {
      footer.replaceChildren("Your feed is empty. Find people by username above, or ",
                             h("a", { href: "#/new", text: "post a photo" }), ".");
    } else footer.textContent = state.hasNext ? "Loading more…" : "You're all caught up.";
  };

  const loadMore = async () => {
    if (state.loading || !state.hasNext) return;
    state.loading = true;
    try {
      const { feed } = await graphql(Q.FEED, { after: state.endCursor });
      if (!current()) return;
      for (const { node } of feed.edges) {
        if (state.posts.has(node.id)) continue;
        const card = postCard(node);
        state.posts.set(node.id, card);
        list.append(card);
      }
      state.endCursor = feed.pageInfo.endCursor;
      state.hasNext = feed.pageInfo.hasNextPage;
      showFooter();
    } catch (error) {
      footer.textContent = error.message;
    } finally {
      state.loading = false;
      list.setAttribute("aria-busy", "false");
    }
  };

  await loadMore();
  if (!current()) return;
  const observer = new IntersectionObserver((entries) => {
    if (!current()) observer.disconnect();
    else if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }, { rootMargin: "600px" });
  observer.observe(footer);

  feedView = {
    apply(event) {
      if (event.kind === "POST_ADDED" && event.post && !state.posts.has(event.postId)) {
        const card = postCard(event.post);
        card.classList.add("arrived");
        state.posts.set(event.postId, card);
        list.prepend(card);
        showFooter();
        const author = event.post.author;
        announce(status, `New photo from ${author.displayName || author.username}`);
      } else if (event.kind === "POST_REMOVED" && state.posts.has(event.postId)) {
        state.posts.get(event.postId).remove();
        state.posts.delete(event.postId);
        showFooter();
      }
    },
    // After a reconnection: the first page as it is now replaces the posts shown that
    // are as new as its last (what happened while away, additions and removals alike);
    // older ones stay, with the cursor that follows them.
    async resync() {
      try {
        const { feed } = await graphql(Q.FEED, { after: null });
        if (!current()) return;
        const fresh = feed.edges.map(({ node }) => node);
        const oldest = fresh.length ? fresh[fresh.length - 1].createdAt : null;
        const keptOlder = feed.pageInfo.hasNextPage
          ? [...state.posts.values()].filter((card) => {
              const time = card.querySelector("time").getAttribute("datetime");
              return oldest !== null && time < oldest;
            })
          : [];
        const cards = new Map(fresh.map((post) => [post.id,
          state.posts.get(post.id) || postCard(post)]));
        for (const card of keptOlder) cards.set(card.dataset.postId, card);
        if (!keptOlder.length) {
          state.endCursor = feed.pageInfo.endCursor;
          state.hasNext = feed.pageInfo.hasNextPage;
        }
        state.posts = cards;
        list.replaceChildren(...cards.values());
        showFooter();
      } catch {
        // The next reconnection tries again.
      }
    },
  };
}

// ---- profiles ----------------------------------------------------------------------

function tile(post, own) {
  if (post.media) {
    return h("li", {}, h("img", {
      src: post.media.url, width: post.media.width, height: post.media.height,
      alt: post.caption || "Photo", loading: "lazy", decoding: "async",
    }));
  }
  if (own && post.status === "FAILED") {
    return h("li", { class: "tile-note failed" },
             h("strong", { text: "Failed" }),
             h("span", { text: post.failureReason || "This photo could not be processed." }));
  }
  if (own && post.status === "PROCESSING") {
    return h("li", { class: "tile-note", text: "Processing…" });
  }
  return null;
}

async function profileView(username, current) {
  const data = await graphql(Q.PROFILE, { username, after: null });
  if (!current()) return;
  const user = data.user;
  if (!user) {
    draw(h("h1", { text: "No such person" }),
         h("p", { text: `Nobody is called @${username}. Check the spelling and try again.` }));
    return;
  }
  const own = user.viewerFollowStatus === "SELF";
  const again = () => current() && route();
  const relation = (mutation, label, attrs) => action(label, async () => {
    await graphql(mutation, { id: user.id });
    await again();
  }, attrs);
  const buttons = [];
  switch (user.viewerFollowStatus) {
    case "NONE":
      buttons.push(relation(Q.FOLLOW, user.isPrivate ? "Ask to follow" : "Follow",
                            { class: "primary" }));
      break;
    case "REQUESTED":
      buttons.push(relation(Q.UNFOLLOW, "Cancel request"));
      break;
    case "FOLLOWING":
      buttons.push(relation(Q.UNFOLLOW, "Unfollow"));
      break;
    case "SELF":
      buttons.push(h("a", { class: "button", href: "#/settings", text: "Edit profile" }));
      break;
    default:
      break;
  }
  if (user.followsViewer && !own) {
    buttons.push(relation(Q.REMOVE_FOLLOWER, "Remove follower"));
  }
  const grid = h("ul", { class: "grid", "aria-label": `Photos by @${user.username}` });
  const more = h("div", { class: "center" });
  const addPage = (connection) => {
    for (const { node } of connection.edges) {
      const item = tile(node, own);
      if (item) grid.append(item);
    }
    more.replaceChildren(connection.pageInfo.hasNextPage ? action("Show more", async () => {
      const next = await graphql(Q.PROFILE, { username, after: connection.pageInfo.endCursor });
      if (current() && next.user) addPage(next.user.posts);
    }) : "");
  };
  addPage(user.posts);
  const hidden = !own && user.posts.edges.length === 0 && user.isPrivate
                 && user.viewerFollowStatus !== "FOLLOWING";
  draw(
    h("section", { class: "profile" },
      h("h1", { text: user.displayName || user.username }),
      h("p", { class: "muted" }, `@${user.username}`,
        user.isPrivate ? h("span", { class: "badge", text: "Private" }) : null,
        user.followsViewer && !own ? h("span", { class: "badge", text: "Follows you" }) : null),
      user.bio ? h("p", { class: "bio", text: user.bio }) : null,
      h("ul", { class: "counts" },
        h("li", {}, h("strong", { text: String(user.postCount) }), " posts"),
        h("li", {}, h("strong", { text: String(user.followerCount) }), " followers"),
        h("li", {}, h("strong", { text: String(user.followingCount) }), " following")),
      h("div", { class: "actions" }, buttons)),
    hidden ? h("p", { class: "card", text: "This account is private. Once they approve your "
                                           + "request, you will see their photos." })
           : user.posts.edges.length === 0 ? h("p", { class: "muted", text: "No photos yet." })
           : grid,
    more,
  );
}

// ---- requests and followers --------------------------------------------------------

async function peopleView(current) {
  const data = await graphql(Q.PEOPLE);
  if (!current()) return;
  const again = () => current() && route();
  const row = (user, ...buttons) => h("li", { class: "person" }, userLink(user),
                                      h("span", { class: "actions" }, buttons));
  const requests = data.followRequests.edges.map(({ node }) => row(node,
    action("Approve", async () => { await graphql(Q.APPROVE, { id: node.id }); await again(); },
           { class: "primary", "aria-label": `Approve @${node.username}` }),
    action("Decline", async () => { await graphql(Q.REJECT, { id: node.id }); await again(); },
           { "aria-label": `Decline @${node.username}` })));
  const followers = data.viewer.followers.edges.map(({ node }) => row(node,
    action("Remove", async () => {
      await graphql(Q.REMOVE_FOLLOWER, { id: node.id });
      await again();
    }, { "aria-label": `Remove follower @${node.username}` })));
  draw(
    h("h1", { text: "Follow requests" }),
    requests.length ? h("ul", { class: "people" }, requests)
                    : h("p", { class: "muted", text: "No one is waiting for your approval." }),
    h("h2", { text: "Followers" }),
    followers.length ? h("ul", { class: "people" }, followers)
                     : h("p", { class: "muted", text: "No followers yet." }),
  );
}

// ---- settings ----------------------------------------------------------------------

async function settingsView(current) {
  const { viewer } = await graphql(Q.VIEWER);
  if (!current()) return;
  const saved = h("p", { role: "status", class: "muted" });
  const error = formError();
  draw(
    h("h1", { text: "Settings" }),
    h("form", {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const form = event.target;
        announce(saved, "");
        announce(error, "");
        try {
          await graphql(Q.UPDATE_PROFILE, { input: {
            displayName: form.elements.displayName.value.trim(),
            bio: form.elements.bio.value,
            isPrivate: form.elements.isPrivate.checked,
          } });
          announce(saved, "Saved.");
        } catch (problem) {
          announce(error, problem.message);
        }
      },
    },
      h("label", { for: "displayName", text: "Display name" }),
      h("input", { id: "displayName", name: "displayName", value: viewer.displayName,
                   autocomplete: "name" }),
      h("label", { for: "bio", text: "Bio" }),
      h("textarea", { id: "bio", name: "bio", rows: "3", text: viewer.bio }),
      h("div", { class: "check" },
        h("input", { id: "isPrivate", name: "isPrivate", type: "checkbox",
                     checked: viewer.isPrivate, "aria-describedby": "private-hint" }),
        h("label", { for: "isPrivate", text: "Private account" })),
      h("p", { id: "private-hint", class: "muted small",
               text: "Only followers you approve see your photos. Going public again "
                     + "approves everyone waiting." }),
      error,
      h("button", { type: "submit", class: "primary", text: "Save" }),
      saved),
  );
}

// ---- posting a photo ---------------------------------------------------------------

function newPostView() {
  const progress = h("progress", { max: "1", value: "0", id: "upload-progress",
                                   "aria-label": "Upload progress", hidden: true });
  const status = h("p", { role: "status" });
  const error = formError();
  draw(
    h("h1", { text: "New photo" }),
    h("form", {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const form = event.target;
        const file = form.elements.photo.files[0];
        const button = form.querySelector("button");
        announce(error, "");
        if (!file) return;
        if (!TYPES.includes(file.type)) {
          announce(error, "Choose a JPEG, PNG or WebP photo.");
          return;
        }
        button.disabled = true;
        try {
          const { createUpload: ticket } = await graphql(Q.CREATE_UPLOAD, {
            input: { contentType: file.type, byteSize: file.size } });
          progress.hidden = false;
          announce(status, "Uploading…");
          await upload(ticket, file, (share) => {
            progress.value = share;
            progress.setAttribute("aria-valuetext", `${Math.round(share * 100)}%`);
          });
          progress.value = 1;
          const { createPost: post } = await graphql(Q.CREATE_POST, {
            input: { uploadId: ticket.uploadId, caption: form.elements.caption.value } });
          announce(status, "Processing your photo…");
          await untilProcessed(post.id, status, error);
          form.reset();
        } catch (problem) {
          announce(status, "");
          announce(error, problem.message);
        } finally {
          button.disabled = false;
        }
      },
    },
      h("label", { for: "photo", text: "Photo (JPEG, PNG or WebP)" }),
      h("input", { id: "photo", name: "photo", type: "file", accept: TYPES.join(","),
                   required: true }),
      h("label", { for: "caption", text: "Caption" }),
      h("input", { id: "caption", name: "caption", maxlength: "2200" }),
      progress,
      status,
      error,
      h("button", { type: "submit", class: "primary", text: "Post" })),
  );
}

async function untilProcessed(id, status, error) {
  // The media worker takes a moment; the post says when it is READY or FAILED.
  for (let wait = 500; ; wait = Math.min(wait * 1.5, 4000)) {
    const { post } = await graphql(Q.POST_STATUS, { id });
    if (!post || post.status === "READY") {
      status.replaceChildren("Posted. ", h("a", {
        href: `#/u/${encodeURIComponent(session.username)}`, text: "See it on your profile" }),
        ".");
      return;
    }
    if (post.status === "FAILED") {
      announce(status, "");
      throw new ApiError(`The photo could not be posted: ${post.failureReason
        || "it could not be processed"}.`, "FAILED");
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

// ---- start -------------------------------------------------------------------------

const notice = session.takeNotice();
window.addEventListener("hashchange", route);
if (session.token) startLive();
route().then(() => { if (notice) showAlert(notice); });

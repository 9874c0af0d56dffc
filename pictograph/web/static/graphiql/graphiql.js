// GraphiQL for Pictograph, started from a file rather than an inline script, so the
// page's Content-Security-Policy can refuse every inline script.
"use strict";

const EXAMPLE = `# Pictograph's GraphQL API. Sign up (or logIn), copy the token, and put
# {"Authorization": "Bearer <token>"} in the Headers pane below: queries, mutations
# and subscriptions (feedUpdates) all use it.

mutation SignUp {
  signUp(input: {username: "ada", password: "correct horse battery", displayName: "Ada"}) {
    token
    user { id username }
  }
}

query Viewer {
  viewer { id username displayName followerCount followingCount postCount }
}

subscription Live {
  feedUpdates { kind postId post { caption author { username } } }
}
`;

const url = new URL("/graphql", window.location.href).toString();

// Subscriptions go over this page's own WebSocket. GraphiQL sends the Headers pane as the
// socket's connection_init payload, where the server reads the token (a browser's
// WebSocket cannot carry an Authorization header).
const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl: url.replace(/^http/, "ws") });

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: EXAMPLE,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    inputValueDeprecation: true,
  }),
);

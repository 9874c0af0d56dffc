// The live connection: feedUpdates over graphql-transport-ws (the vendored graphql-ws),
// kept open for as long as the person is signed in. A drop (network, server restart) is
// retried without end, with growing pauses; a ping unanswered for 5 s counts as a drop,
// since a dead network may never close the socket. After every reconnection the app
// resyncs what it shows, as events sent while it was away are lost.

import { createClient } from "/static/vendor/graphql-ws/client.js";
import { session } from "./session.js";

const TOKEN_ENDED = 4403;
const PONG_WAIT_MS = 5000;

export function connectLive({ document, onEvent, onStatus, onResync }) {
  let pongTimer = null;
  let everConnected = false;
  let socket = null;
  const client = createClient({
    url: new URL("/graphql", window.location.href).toString().replace(/^http/, "ws"),
    connectionParams: () => ({ authorization: `Bearer ${session.token}` }),
    lazy: false,
    // A close that is not retried (4403: the token ended) is handled in on.closed; without
    // this graphql-ws also writes it to the console as an error.
    onNonLazyError: () => {},
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: (event) => !(event && event.code === TOKEN_ENDED),
    retryWait: async (retries) => {
      const pause = Math.min(1000 * 2 ** retries, 15_000) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, pause));
    },
    on: {
      connecting: () => onStatus(everConnected ? "reconnecting" : "connecting"),
      connected: () => {
        onStatus("live");
        if (everConnected) onResync();
        everConnected = true;
      },
      closed: (event) => {
        clearTimeout(pongTimer);
        if (event && event.code === TOKEN_ENDED) session.ended();
        else onStatus("reconnecting");
      },
      ping: (received) => {
        if (received) return;
        pongTimer = setTimeout(() => {
          if (socket && socket.readyState === WebSocket.OPEN) socket.close(4408, "No pong");
        }, PONG_WAIT_MS);
      },
      pong: (received) => { if (received) clearTimeout(pongTimer); },
      opened: (opened) => { socket = opened; },
    },
  });
  const unsubscribe = client.subscribe({ query: document }, {
    next: (message) => {
      if (message.data) onEvent(message.data.feedUpdates);
    },
    error: () => onStatus("reconnecting"),
    complete: () => {},
  });
  return () => {
    unsubscribe();
    client.dispose();
  };
}

// GraphQL over HTTP as a production client speaks it: every operation by the hash of its
// document (Apollo's automatic persisted queries), the document itself only when the
// server answers PERSISTED_QUERY_NOT_FOUND, and errors turned into sentences a person
// can act on.

import { sha256 } from "./sha256.js";
import { session } from "./session.js";

const ENDPOINT = "/graphql";
const hashes = new Map(); // document -> its hash, computed once per page

export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

async function hashOf(query) {
  if (!hashes.has(query)) hashes.set(query, await sha256(query));
  return hashes.get(query);
}

async function send(body) {
  const headers = { "content-type": "application/json" };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, { method: "POST", headers, body: JSON.stringify(body) });
  } catch {
    throw new ApiError("Can't reach Pictograph. Check your connection and try again.",
                       "NETWORK");
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}; try again in a moment.`,
                       "HTTP");
  }
}

function explain(error) {
  const extensions = error.extensions || {};
  switch (extensions.code) {
    case "RATE_LIMITED": {
      const seconds = Math.ceil(Number(extensions.retryAfter) || 60);
      const wait = seconds >= 120 ? `${Math.ceil(seconds / 60)} minutes`
                                  : `${seconds} second${seconds === 1 ? "" : "s"}`;
      return `Too many attempts. Try again in ${wait}.`;
    }
    case "UNAUTHENTICATED":
      return "Your session has ended. Please log in again.";
    default:
      return error.message || "Something went wrong.";
  }
}

export async function graphql(query, variables = {}) {
  const extensions = { persistedQuery: { version: 1, sha256Hash: await hashOf(query) } };
  let result = await send({ extensions, variables });
  const unknown = (result.errors || []).some(
    (error) => error.extensions && error.extensions.code === "PERSISTED_QUERY_NOT_FOUND");
  if (unknown) result = await send({ query, extensions, variables });
  if (result.errors && result.errors.length) {
    const [first] = result.errors;
    const code = (first.extensions && first.extensions.code) || "ERROR";
    if (code === "UNAUTHENTICATED" && session.token) session.ended();
    throw new ApiError(explain(first), code, first.extensions);
  }
  return result.data;
}

// An upload ticket's PUT, with progress (fetch has none for request bodies).
export function upload(ticket, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(ticket.method, ticket.url);
    for (const { name, value } of ticket.headers) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) resolve();
      else reject(new ApiError(`The upload was refused (${request.status}).`, "UPLOAD"));
    });
    request.addEventListener("error", () => reject(new ApiError(
      "The upload did not get through. Check your connection and try again.", "UPLOAD")));
    request.send(file);
  });
}

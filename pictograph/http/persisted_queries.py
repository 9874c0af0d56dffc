"""Automatic persisted queries (Apollo's protocol), kept in Redis for every process.

A client sends `extensions.persistedQuery.sha256Hash` (the hex SHA-256 of the document)
instead of the document. An unknown hash is answered PERSISTED_QUERY_NOT_FOUND; the client
then sends the document with its hash once, which registers it. A GET may carry a hash
too (a query only): a page on another site can make a browser send it, but it can only
run a query somebody already registered, never a mutation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from pictograph.cache import keys

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_FOUND_BODY = orjson.dumps({"errors": [{
    "message": "PersistedQueryNotFound", "extensions": {"code": NOT_FOUND}}]})
_HEX = frozenset("0123456789abcdef")


class RequestError(Exception):
    """The client's mistake, answered 400 with a GraphQL error (BAD_USER_INPUT)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One GraphQL request's fields, as the cache needs them."""

    query: str | None  # the document, unless only its hash came
    document_hash: str  # hex SHA-256 of the document
    persisted: bool  # the client named the document by hash (extensions.persistedQuery)
    operation_name: str | None
    variables: dict[str, Any]
    body: dict[str, Any]  # the request as sent, for Strawberry

    def with_query(self, query: str) -> Operation:
        return Operation(query, self.document_hash, self.persisted, self.operation_name,
                         self.variables, {**self.body, "query": query})


def read_operation(body: Any) -> Operation | None:
    """The operation in a request body, or None when it is not one this module handles
    (Strawberry then answers it as it does today). A persisted-query hash that is
    malformed, or that does not match the document sent with it, raises RequestError."""
    if not isinstance(body, dict):
        return None
    query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict) or not isinstance(name, str | None):
        return None
    extensions = body.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is None:
        if not isinstance(query, str):
            return None
        return Operation(query, sha256(query), False, name, variables, body)
    wanted = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if not (isinstance(wanted, str) and len(wanted) == 64 and set(wanted) <= _HEX):
        raise RequestError("extensions.persistedQuery.sha256Hash must be the lowercase hex "
                           "SHA-256 of the query")
    if query is None:
        return Operation(None, wanted, True, name, variables, body)
    if not isinstance(query, str) or sha256(query) != wanted:
        raise RequestError("provided sha does not match query")
    return Operation(query, wanted, True, name, variables, body)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class PersistedQueries:
    """The registry of documents by hash."""

    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    async def find(self, document_hash: str) -> str | None:
        # GETEX: a document in use stays registered.
        found = await self.redis.getex(keys.persisted_query(document_hash), ex=self.ttl)
        return found.decode() if isinstance(found, bytes) else found

    async def register(self, document_hash: str, query: str) -> None:
        await self.redis.set(keys.persisted_query(document_hash), query, ex=self.ttl)

"""Plain HTTP around the GraphQL endpoint: middleware, health, metrics."""

"""Pictograph: the backend of a photo-sharing network, served as one GraphQL API."""

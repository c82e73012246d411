"""The auth sidecar for Hasura GraphQL Engine."""

__version__ = "0.1.0"

"""OidcCredentials: trade the Azure Pipelines job's OIDC token for short-lived cloud credentials."""

__version__ = "1.0.0"

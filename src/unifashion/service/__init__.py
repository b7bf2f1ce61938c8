"""The HTTP search service and its web page (`unifashion serve`)."""
from unifashion.service.app import ServiceAccess, ServiceLimits, create_app, serve

__all__ = ["ServiceAccess", "ServiceLimits", "create_app", "serve"]

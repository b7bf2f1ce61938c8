"""The HTTP search service and its web page (`unifashion serve`)."""
from unifashion.service.app import ServiceLimits, create_app, serve

__all__ = ["ServiceLimits", "create_app", "serve"]

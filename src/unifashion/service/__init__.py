"""The HTTP search service and its web page (`unifashion serve`)."""
from unifashion.service.access import ServiceAccess
from unifashion.service.app import create_app, serve
from unifashion.service.limits import ServiceLimits

__all__ = ["ServiceAccess", "ServiceLimits", "create_app", "serve"]

"""UniFashion: one fashion vision-language model for retrieval, composed retrieval, captioning and generation.

    from unifashion import UniFashion
    model = UniFashion.from_pretrained("quickstart/model")   # or UniFashion.from_config("embedded")
    model.classify("photo.png", "dress,coat,bag").ranked()

The names below are the public API; each is imported on first use (PEP 562), so `import unifashion`
and the command line's `--help` do not load torch. This module is the package's face for its users:
nothing inside the package imports from it (tests/test_architecture.py).
"""
from unifashion.errors import ConfigError, DataError, UnifashionError
from unifashion.version import __version__

__all__ = [
    "__version__",
    # the model
    "UniFashion", "UniFashionConfig", "load_config", "ImageFeatures", "TextFeatures", "ComposedFeatures",
    "Classification",
    # catalog search
    "CatalogSearch", "CatalogIndex", "CatalogItem", "SearchHit", "SearchConfig", "build_index", "items_from_data",
    "items_from_images",
    # errors a user can act on
    "UnifashionError", "DataError", "ConfigError",
]


def __getattr__(name: str):
    match name:
        case "UniFashion":
            from unifashion.models.unified import UniFashion as value
        case "Classification":
            from unifashion.models.unified import Classification as value
        case "UniFashionConfig":
            from unifashion.models.model_config import UniFashionConfig as value
        case "load_config":
            from unifashion.models.model_config import load_config as value
        case "ImageFeatures":
            from unifashion.models.qformer import ImageFeatures as value
        case "TextFeatures":
            from unifashion.models.qformer import TextFeatures as value
        case "ComposedFeatures":
            from unifashion.models.qformer import ComposedFeatures as value
        case "CatalogSearch":
            from unifashion.search.engine import CatalogSearch as value
        case "SearchHit":
            from unifashion.search.engine import SearchHit as value
        case "SearchConfig":
            from unifashion.search.engine import SearchConfig as value
        case "CatalogIndex":
            from unifashion.search.catalog_index import CatalogIndex as value
        case "CatalogItem":
            from unifashion.search.catalog_index import CatalogItem as value
        case "build_index":
            from unifashion.search.index_build import build_index as value
        case "items_from_data":
            from unifashion.search.index_build import items_from_data as value
        case "items_from_images":
            from unifashion.search.index_build import items_from_images as value
        case _:
            raise AttributeError(f"module 'unifashion' has no attribute {name!r}")
    globals()[name] = value  # the next look-up finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

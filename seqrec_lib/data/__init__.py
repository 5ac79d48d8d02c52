"""Data layer: dataset registry, downloads, parsers, preprocessing, synthetic data and the leave-one-out split.

``load_dataset(name)`` gives a ``SequenceData`` (per-user chronological sequences); ``build_splits`` turns
it into padded tensors for training and evaluation.
"""

from .download import ChecksumMismatchError, DataNotFoundError, ensure_file, resolve_data_dir
from .loading import load_dataset, resolve_cache_dir
from .parsers import DataFormatError, Interactions, ItemFacets
from .preprocess import KCore, Preprocessing, kcore_mask, preprocess
from .registry import DATASETS, DatasetSpec, SourceFile, get_spec, list_datasets
from .sequences import History, SequenceData, SplitData, build_splits, make_samples
from .synthetic import SyntheticConfig, SyntheticTruth, generate_synthetic, time_context
from .temporal import CALENDAR_FEATURES, calendar_features

__all__ = [
    "CALENDAR_FEATURES", "ChecksumMismatchError", "DATASETS", "DataFormatError", "DataNotFoundError",
    "DatasetSpec", "History", "Interactions", "ItemFacets", "KCore", "Preprocessing", "SequenceData",
    "SourceFile", "SplitData", "SyntheticConfig", "SyntheticTruth", "build_splits", "calendar_features",
    "ensure_file", "generate_synthetic", "get_spec", "kcore_mask", "list_datasets", "load_dataset",
    "make_samples", "preprocess", "resolve_cache_dir", "resolve_data_dir", "time_context",
]

"""Benchmarks: each module turns raw rows into Problem records and builds the prompt."""

from monkeyflow.data.base import DATASETS, Dataset, DatasetError, DatasetSpec, get_dataset

__all__ = ["DATASETS", "Dataset", "DatasetError", "DatasetSpec", "get_dataset"]

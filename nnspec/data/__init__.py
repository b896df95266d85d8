"""Data: the sources a train block names, the data sets that ship with
nnspec or are generated, preparing a table for a model, validation splits
and normalisation. One module each; this package gathers their names."""
from .datasets import DatasetParams
from .images import ImagesSource
from .prepare import Prepared, check_tokens, first_non_whole, plain_label, prepare
from .sources import CsvSource, DatasetSource, NpySource, NpzSource, Source, csv_features, field_column, read_csv
from .splits import fit_standard, validation_split
from .table import DATASETS, SOURCES, DataError, DataWarning, Table, parse_number

__all__ = ["DATASETS", "SOURCES", "CsvSource", "DataError", "DataWarning", "DatasetParams", "DatasetSource",
           "ImagesSource",
           "NpySource", "NpzSource", "Prepared", "Source", "Table", "check_tokens", "csv_features", "field_column",
           "first_non_whole", "fit_standard", "parse_number", "plain_label", "prepare", "read_csv",
           "validation_split"]

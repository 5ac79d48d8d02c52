"""Raw file formats → ``Interactions`` (one row per interaction, in file order), and item-facet readers.

One function per format. Every reader checks what it reads: an empty file, a line with the wrong number of
fields or the wrong separator, a non-integer id or timestamp each raise ``DataFormatError`` naming the file,
the 1-based line and what was expected. Large delimited files go through pandas' C parser; when it rejects
the file, a line-by-line pass (the reference reader) finds the first bad line for the message.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_INT = re.compile(r"-?[0-9]+")


class DataFormatError(ValueError):
    """A raw file is not in the expected format; ``path`` and the 1-based ``line`` (None: whole file) say where."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Interactions:
    """N interactions in file order.

    ``users`` [N] and ``items`` [N] are raw ids (int64, or str objects for Amazon), ``timestamps`` [N]
    int64 unix seconds or None, ``ratings`` [N] float32 or None, ``source`` the file they came from.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.users)
        for label, column in (("items", self.items), ("timestamps", self.timestamps), ("ratings", self.ratings)):
            if column is not None and len(column) != n:
                raise ValueError(f"Interactions from {self.source or '?'}: {len(column)} {label} for {n} users")

    def __len__(self) -> int:
        return int(len(self.users))

    def select(self, rows: np.ndarray) -> "Interactions":
        """The rows at ``rows`` (a bool mask [N] or an index array), in that order."""
        def take(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[rows]

        return Interactions(self.users[rows], self.items[rows], take(self.timestamps), take(self.ratings),
                            self.source)


@dataclass(frozen=True)
class ItemFacets:
    """One facet of the items: ``labels`` maps a raw item id to its labels (e.g. ``("Action", "Drama")``)."""

    name: str
    labels: dict[Any, tuple[str, ...]]
    source: str


# --------------------------------------------------------------------------------------------- line reading

def _lines(path: Path, expected: str, skip: int = 0, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line end) of every data line after ``skip`` header lines.

    Blank lines at the end of the file are allowed; a blank line followed by data, an undecodable line and
    a file with no data line raise DataFormatError (``expected`` describes a good line for the message).
    """
    blank_at = None
    seen = False
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number <= skip:
                continue
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, number, f"cannot be decoded as {encoding} ({err.reason})") from None
            if not line.strip():
                blank_at = blank_at or number
                continue
            if blank_at is not None:
                raise DataFormatError(path, blank_at, f"empty line; expected {expected}")
            seen = True
            yield number, line
    if not seen:
        what = "no data after the header" if skip else "the file is empty"
        raise DataFormatError(path, skip + 1, f"{what}; expected {expected}")


def _to_int(token: str, path: Path, line: int, what: str) -> int:
    if not _INT.fullmatch(token):
        raise DataFormatError(path, line, f"{what} must be an integer, got {token!r}")
    return int(token)


def _to_float(token: str, path: Path, line: int, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or token != token.strip():
        raise DataFormatError(path, line, f"{what} must be a number, got {token!r}")
    return value


# ------------------------------------------------------------------------------------ delimited tables

@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "int", "float" or "str"


_DTYPES = {"int": np.int64, "float": np.float64, "str": object}


def _describe(sep: str, columns: tuple[_Column, ...]) -> str:
    return f"{len(columns)} fields separated by {sep!r} ({', '.join(c.name for c in columns)})"


def _read_delimited(path: str | Path, sep: str, columns: tuple[_Column, ...], header: str | None = None,
                    encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """Column name → [N] array of a delimited file whose every line has exactly ``len(columns)`` fields."""
    path = Path(path)
    expected = _describe(sep, columns)
    skip = 0
    if header is not None:
        number, first = next(_lines(path, f"the header {header!r}"))
        if number != 1 or first != header:
            got = repr(first[:100]) if number == 1 else "an empty line"
            raise DataFormatError(path, 1, f"expected the header {header!r}, got {got}")
        skip = 1
    table = _read_fast(path, sep, columns, skip, encoding) if len(sep) == 1 else None
    return table if table is not None else _read_slow(path, sep, columns, expected, skip, encoding)


def _read_fast(path: Path, sep: str, columns: tuple[_Column, ...], skip: int,
               encoding: str) -> dict[str, np.ndarray] | None:
    """pandas' C parser with strict dtypes; None when anything is off (the slow reader then explains)."""
    try:
        frame = pd.read_csv(path, sep=sep, header=None, skiprows=skip, engine="c", encoding=encoding,
                            dtype={i: _DTYPES[c.kind] for i, c in enumerate(columns)}, quoting=csv.QUOTE_NONE,
                            skip_blank_lines=False, na_filter=False)
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None
    if frame.shape[1] != len(columns) or len(frame) == 0 or frame.isna().to_numpy().any():
        return None
    out = {}
    for i, column in enumerate(columns):
        values = frame[i].to_numpy()
        if column.kind == "str" and np.any(values == ""):
            return None
        if column.kind == "float" and not np.isfinite(values).all():
            return None
        out[column.name] = values
    return out


def _read_slow(path: Path, sep: str, columns: tuple[_Column, ...], expected: str, skip: int,
               encoding: str) -> dict[str, np.ndarray]:
    """The reference reader: one line at a time, raising at the first bad line."""
    values: list[list[Any]] = [[] for _ in columns]
    for number, line in _lines(path, expected, skip, encoding):
        fields = line.split(sep)
        if len(fields) != len(columns):
            raise DataFormatError(path, number, f"expected {expected}, got {len(fields)} field(s): {line[:100]!r}")
        for column, token, out in zip(columns, fields, values):
            if column.kind == "int":
                out.append(_to_int(token, path, number, column.name))
            elif column.kind == "float":
                out.append(_to_float(token, path, number, column.name))
            elif token:
                out.append(token)
            else:
                raise DataFormatError(path, number, f"{column.name} must not be empty")
    return {c.name: np.asarray(v, dtype=_DTYPES[c.kind]) for c, v in zip(columns, values)}


def _interactions(table: dict[str, np.ndarray], path: str | Path, user: str = "user",
                  item: str = "item") -> Interactions:
    return Interactions(
        users=table[user],
        items=table[item],
        timestamps=table["timestamp"].astype(np.int64),
        ratings=table["rating"].astype(np.float32) if "rating" in table else None,
        source=str(path),
    )


_RATING_COLUMNS = (_Column("user", "int"), _Column("item", "int"), _Column("rating", "float"),
                   _Column("timestamp", "int"))


# -------------------------------------------------------------------------------------- interaction files

def read_s3rec_sequences(path: str | Path) -> Interactions:
    """S3-Rec/ICLRec ``<Name>.txt``: one line ``user item item …`` per user (space-separated integer ids,
    items in time order). No timestamps; row order = file order, so each user's items stay in order."""
    path = Path(path)
    expected = "one line per user: space-separated integer ids 'user item item ...'"
    users: list[int] = []
    items: list[int] = []
    first_line: dict[int, int] = {}
    for number, line in _lines(path, expected):
        tokens = line.split(" ")
        if len(tokens) < 2:
            raise DataFormatError(path, number, f"expected {expected} with at least one item, got {line[:100]!r}")
        ids = [_to_int(token, path, number, "every id (user and items)") for token in tokens]
        user = ids[0]
        if user in first_line:
            raise DataFormatError(path, number, f"user {user} already has line {first_line[user]}; {expected}")
        first_line[user] = number
        users.extend([user] * (len(ids) - 1))
        items.extend(ids[1:])
    return Interactions(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), source=str(path))


def read_ml100k_ratings(path: str | Path) -> Interactions:
    """MovieLens 100K ``u.data``: ``user item rating timestamp``, tab-separated, no header."""
    return _interactions(_read_delimited(path, "\t", _RATING_COLUMNS), path)


def read_ml1m_ratings(path: str | Path) -> Interactions:
    """MovieLens 1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, no header."""
    return _interactions(_read_delimited(path, "::", _RATING_COLUMNS), path)


def read_ml20m_ratings(path: str | Path) -> Interactions:
    """MovieLens 20M ``ratings.csv``: header ``userId,movieId,rating,timestamp``; ratings in half stars."""
    table = _read_delimited(path, ",", _RATING_COLUMNS, header="userId,movieId,rating,timestamp")
    return _interactions(table, path)


def read_amazon_ratings(path: str | Path) -> Interactions:
    """McAuley 2014 "ratings only" CSV (e.g. ``ratings_Books.csv``): ``user,item,rating,timestamp``, no
    header; user and item ids are strings (reviewer id, ASIN), timestamps at day granularity."""
    columns = (_Column("user", "str"), _Column("item", "str"), _Column("rating", "float"),
               _Column("timestamp", "int"))
    return _interactions(_read_delimited(path, ",", columns), path)


def read_lfm1b_events(path: str | Path) -> Interactions:
    """LFM-1b ``LFM-1b_LEs.txt``: ``user artist album track timestamp``, tab-separated integers; item = track."""
    columns = (_Column("user", "int"), _Column("artist", "int"), _Column("album", "int"), _Column("track", "int"),
               _Column("timestamp", "int"))
    return _interactions(_read_delimited(path, "\t", columns), path, item="track")


# ------------------------------------------------------------------------------------------- item facets

def read_s3rec_item_attributes(path: str | Path) -> ItemFacets:
    """S3-Rec ``<Name>_item2attributes.json``: ``{"item id": [attribute ids]}`` → facet ``attribute`` with
    the attribute ids as labels (``("17", "28")``)."""
    path = Path(path)
    expected = 'a JSON object {"item id": [attribute ids, ...]}'
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, f"cannot be decoded as utf-8 ({err.reason})") from None
    if not text.strip():
        raise DataFormatError(path, 1, f"the file is empty; expected {expected}")
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"invalid JSON ({err.msg}); expected {expected}") from None
    if not isinstance(mapping, dict):
        raise DataFormatError(path, 1, f"expected {expected}, got a JSON {type(mapping).__name__}")
    labels: dict[Any, tuple[str, ...]] = {}
    for key, attributes in mapping.items():
        if not _INT.fullmatch(key):
            raise DataFormatError(path, _line_of(text, json.dumps(key)), f"item id must be an integer, got {key!r}")
        if not isinstance(attributes, list) or not all(type(a) is int for a in attributes):
            raise DataFormatError(path, _line_of(text, json.dumps(key)),
                                  f"item {key}: expected a list of integer attribute ids, got {attributes!r:.100}")
        labels[int(key)] = tuple(str(a) for a in attributes)
    return ItemFacets("attribute", labels, str(path))


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of ``needle`` in ``text`` (1 if absent)."""
    return text.count("\n", 0, max(text.find(needle), 0)) + 1


def read_ml100k_genres(item_path: str | Path, genre_path: str | Path) -> ItemFacets:
    """MovieLens 100K ``u.item`` (``|``-separated: id, title, release, video release, URL, one 0/1 flag per
    genre) with the genre names of ``u.genre`` (``name|index``) → facet ``genre``."""
    item_path, genre_path = Path(item_path), Path(genre_path)
    names: list[str] = []
    for number, line in _lines(genre_path, "'name|index' with index 0, 1, 2, ...", encoding="latin-1"):
        fields = line.split("|")
        if len(fields) != 2 or _to_int(fields[1], genre_path, number, "genre index") != len(names):
            raise DataFormatError(genre_path, number, f"expected 'name|{len(names)}', got {line[:100]!r}")
        names.append(fields[0])
    n_fields = 5 + len(names)
    expected = f"{n_fields} fields separated by '|' (id, title, release date, video release date, URL, " \
               f"{len(names)} genre flags)"
    labels: dict[Any, tuple[str, ...]] = {}
    for number, line in _lines(item_path, expected, encoding="latin-1"):
        fields = line.split("|")
        if len(fields) != n_fields:
            raise DataFormatError(item_path, number, f"expected {expected}, got {len(fields)} field(s)")
        item = _to_int(fields[0], item_path, number, "movie id")
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataFormatError(item_path, number, f"genre flags must be 0 or 1, got {'|'.join(flags)!r}")
        if item in labels:
            raise DataFormatError(item_path, number, f"movie {item} appears twice")
        labels[item] = tuple(name for name, flag in zip(names, flags) if flag == "1")
    return ItemFacets("genre", labels, str(item_path))


def read_ml1m_genres(path: str | Path) -> ItemFacets:
    """MovieLens 1M ``movies.dat`` (Latin-1): ``MovieID::Title::Genre|Genre|…`` → facet ``genre``."""
    path = Path(path)
    expected = "3 fields separated by '::' (MovieID, Title, Genres)"
    labels: dict[Any, tuple[str, ...]] = {}
    for number, line in _lines(path, expected, encoding="latin-1"):
        fields = line.split("::")
        if len(fields) != 3:
            raise DataFormatError(path, number, f"expected {expected}, got {len(fields)} field(s): {line[:100]!r}")
        item = _to_int(fields[0], path, number, "MovieID")
        genres = tuple(fields[2].split("|"))
        if not all(genres):
            raise DataFormatError(path, number, f"expected '|'-separated genre names, got {fields[2]!r}")
        if item in labels:
            raise DataFormatError(path, number, f"movie {item} appears twice")
        labels[item] = genres
    return ItemFacets("genre", labels, str(path))

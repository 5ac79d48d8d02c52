"""Parsers: each raw format on small hand-written files, and every malformed-input case naming file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqrec_lib.data.parsers import (
    DataFormatError,
    read_amazon_ratings,
    read_lfm1b_events,
    read_ml1m_genres,
    read_ml1m_ratings,
    read_ml20m_ratings,
    read_ml100k_genres,
    read_ml100k_ratings,
    read_s3rec_item_attributes,
    read_s3rec_sequences,
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def assert_format_error(excinfo: pytest.ExceptionInfo, path: Path, line: int | None, *words: str) -> None:
    err = excinfo.value
    assert err.path == str(path) and err.line == line
    message = str(err)
    assert str(path) in message
    if line is not None:
        assert f"line {line}:" in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# ------------------------------------------------------------------------------------------ valid files

def test_s3rec_sequences_in_file_order(tmp_path):
    path = write(tmp_path, "Beauty.txt", "1 1 2 3\n2 4 1\n3 5 6 7 2\n")
    data = read_s3rec_sequences(path)
    np.testing.assert_array_equal(data.users, [1, 1, 1, 2, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(data.items, [1, 2, 3, 4, 1, 5, 6, 7, 2])
    assert data.timestamps is None and data.source == str(path)


def test_ml100k_ratings(tmp_path):
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    data = read_ml100k_ratings(path)
    np.testing.assert_array_equal(data.users, [196, 186, 22])
    np.testing.assert_array_equal(data.items, [242, 302, 377])
    np.testing.assert_array_equal(data.timestamps, [881250949, 891717742, 878887116])
    np.testing.assert_array_equal(data.ratings, [3, 3, 1])
    assert data.timestamps.dtype == np.int64


def test_ml1m_ratings_double_colon(tmp_path):
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    data = read_ml1m_ratings(path)
    np.testing.assert_array_equal(data.users, [1, 1])
    np.testing.assert_array_equal(data.items, [1193, 661])
    np.testing.assert_array_equal(data.timestamps, [978300760, 978302109])


def test_ml20m_ratings_with_header_and_half_stars(tmp_path):
    path = write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,4.0,1112484676\n")
    data = read_ml20m_ratings(path)
    np.testing.assert_array_equal(data.items, [2, 29])
    np.testing.assert_allclose(data.ratings, [3.5, 4.0])


def test_amazon_ratings_string_ids(tmp_path):
    path = write(tmp_path, "ratings_Books.csv", "AH2L9G3DQHHAJ,0000000116,4.0,1019865600\n"
                                                 "A2IIIDRK3PRRZY,0000000116,1.0,1395619200\n")
    data = read_amazon_ratings(path)
    assert list(data.users) == ["AH2L9G3DQHHAJ", "A2IIIDRK3PRRZY"]
    assert list(data.items) == ["0000000116", "0000000116"]  # leading zeros kept: ids are strings
    np.testing.assert_array_equal(data.timestamps, [1019865600, 1395619200])


def test_lfm1b_events_item_is_track(tmp_path):
    path = write(tmp_path, "LFM-1b_LEs.txt", "31435741\t2\t4\t4\t1385212958\n31435741\t2\t4\t5\t1385212700\n")
    data = read_lfm1b_events(path)
    np.testing.assert_array_equal(data.items, [4, 5])
    np.testing.assert_array_equal(data.timestamps, [1385212958, 1385212700])


def test_trailing_blank_lines_are_allowed_and_slow_path_matches_fast_path(tmp_path):
    """A trailing blank line sends the table to the line-by-line reader; both readers must agree."""
    rng = np.random.default_rng(0)
    rows = rng.integers(1, 10**6, size=(200, 4))
    text = "".join("\t".join(map(str, r)) + "\n" for r in rows)
    fast = read_ml100k_ratings(write(tmp_path, "fast.data", text))
    slow = read_ml100k_ratings(write(tmp_path, "slow.data", text + "\n\n"))
    for column in ("users", "items", "timestamps", "ratings"):
        np.testing.assert_array_equal(getattr(fast, column), getattr(slow, column))
    np.testing.assert_array_equal(fast.users, rows[:, 0])


def test_crlf_line_ends(tmp_path):
    data = read_s3rec_sequences(write(tmp_path, "crlf.txt", "1 1 2\r\n2 3 1\r\n"))
    np.testing.assert_array_equal(data.items, [1, 2, 3, 1])


# ------------------------------------------------------------------------------------- malformed files

MALFORMED = [
    # (parser, file name, content, bad line, words in the message)
    (read_s3rec_sequences, "Beauty.txt", "", 1, ["empty"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2 3 x4\n", 2, ["integer", "'x4'"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2,3,4\n", 2, ["integer", "'2,3,4'"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2\t3\t4\n", 2, ["integer"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2  3\n", 2, ["integer", "''"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2\n", 2, ["at least one item"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n\n2 3\n", 2, ["empty line"]),
    (read_s3rec_sequences, "Beauty.txt", "1 1 2\n2 3\n1 4\n", 3, ["user 1 already has line 1"]),
    (read_ml100k_ratings, "u.data", "", 1, ["empty"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n5\t6\t7\n", 2, ["expected 4 fields", "got 3"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n5\t6\t7\t8\t9\n", 2, ["expected 4 fields", "got 5"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n5 6 7 8\n", 2, ["separated by '\\t'", "got 1"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n5\t6\t7\t8\n9\tx\t1\t2\n", 3, ["item must be an integer", "'x'"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n5\t6\t7\t8.5\n", 2, ["timestamp must be an integer", "'8.5'"]),
    (read_ml100k_ratings, "u.data", "1\t2\t3\t4\n\n5\t6\t7\t8\n", 2, ["empty line"]),
    (read_ml1m_ratings, "ratings.dat", "", 1, ["empty"]),
    (read_ml1m_ratings, "ratings.dat", "1::2::3::4\n1:2:3:4\n", 2, ["separated by '::'", "got 1"]),
    (read_ml1m_ratings, "ratings.dat", "1::2::3::4\n1::2::3\n", 2, ["expected 4 fields"]),
    (read_ml1m_ratings, "ratings.dat", "u1::2::3::4\n", 1, ["user must be an integer", "'u1'"]),
    (read_ml20m_ratings, "ratings.csv", "", 1, ["empty"]),
    (read_ml20m_ratings, "ratings.csv", "1,2,3.5,1112486027\n", 1, ["expected the header"]),
    (read_ml20m_ratings, "ratings.csv", "userId,movieId,rating,timestamp\n", 2, ["no data after the header"]),
    (read_ml20m_ratings, "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1\n1,2,good,2\n", 3,
     ["rating must be a number"]),
    (read_ml20m_ratings, "ratings.csv", "userId,movieId,rating,timestamp\n1;2;3.5;1\n", 2, ["separated by ','"]),
    (read_amazon_ratings, "ratings_Books.csv", "", 1, ["empty"]),
    (read_amazon_ratings, "ratings_Books.csv", "A,B,5.0,1\nA,B,5.0,yesterday\n", 2,
     ["timestamp must be an integer"]),
    (read_amazon_ratings, "ratings_Books.csv", "A,B,5.0,1\nA,,5.0,2\n", 2, ["item must not be empty"]),
    (read_amazon_ratings, "ratings_Books.csv", "A,B,5.0,1\nA\tB\t5.0\t2\n", 2, ["expected 4 fields"]),
    (read_lfm1b_events, "LFM-1b_LEs.txt", "", 1, ["empty"]),
    (read_lfm1b_events, "LFM-1b_LEs.txt", "1\t2\t3\t4\t5\n1\t2\t4\t5\n", 2, ["expected 5 fields"]),
    (read_lfm1b_events, "LFM-1b_LEs.txt", "1\t2\t3\ttrack\t5\n", 1, ["track must be an integer"]),
]


@pytest.mark.parametrize("parser, name, content, line, words", MALFORMED,
                         ids=[f"{m[0].__name__}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_interaction_files(tmp_path, parser, name, content, line, words):
    path = write(tmp_path, name, content)
    with pytest.raises(DataFormatError) as excinfo:
        parser(path)
    assert_format_error(excinfo, path, line, *words)


def test_undecodable_line_is_named(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t2\t3\t4\n1\t2\t3\t\xff\n")
    with pytest.raises(DataFormatError) as excinfo:
        read_ml100k_ratings(path)
    assert_format_error(excinfo, path, 2, "utf-8")


# ------------------------------------------------------------------------------------------- item facets

def test_s3rec_item_attributes(tmp_path):
    path = write(tmp_path, "Beauty_item2attributes.json", '{"1": [1, 2, 3], "2": [4], "3": []}')
    facets = read_s3rec_item_attributes(path)
    assert facets.name == "attribute" and facets.source == str(path)
    assert facets.labels == {1: ("1", "2", "3"), 2: ("4",), 3: ()}


@pytest.mark.parametrize("content, line, words", [
    ("", 1, ["empty"]),
    ('{"1": [1],\n "2": [2,\n', 3, ["invalid JSON"]),
    ('{"1": [1],\n "x2": [2]}', 2, ["item id must be an integer", "'x2'"]),
    ('{"1": [1],\n\n "2": ["brand"]}', 3, ["list of integer attribute ids"]),
    ("[1, 2]", 1, ["JSON list"]),
])
def test_s3rec_item_attributes_malformed(tmp_path, content, line, words):
    path = write(tmp_path, "item2attributes.json", content)
    with pytest.raises(DataFormatError) as excinfo:
        read_s3rec_item_attributes(path)
    assert_format_error(excinfo, path, line, *words)


GENRES = "unknown|0\nAction|1\nComedy|2\n\n"


def test_ml100k_genres(tmp_path):
    genre = write(tmp_path, "u.genre", GENRES)
    item = write(tmp_path, "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n"
                                     "2|GoldenEye (1995)|01-Jan-1995||http://y|0|1|1\n")
    facets = read_ml100k_genres(item, genre)
    assert facets.name == "genre"
    assert facets.labels == {1: ("Comedy",), 2: ("Action", "Comedy")}


@pytest.mark.parametrize("content, line, words", [
    ("", 1, ["empty"]),
    ("1|A|d||u|0|0|1\n2|B|d||u|0|1\n", 2, ["expected 8 fields", "got 7"]),
    ("1|A|d||u|0|0|1\n2|B|d||u|0|2|1\n", 2, ["0 or 1"]),
    ("one|A|d||u|0|0|1\n", 1, ["movie id must be an integer"]),
    ("1|A|d||u|0|0|1\n1|A|d||u|0|0|1\n", 2, ["appears twice"]),
])
def test_ml100k_genres_malformed(tmp_path, content, line, words):
    genre = write(tmp_path, "u.genre", GENRES)
    item = write(tmp_path, "u.item", content)
    with pytest.raises(DataFormatError) as excinfo:
        read_ml100k_genres(item, genre)
    assert_format_error(excinfo, item, line, *words)


def test_ml100k_genre_index_out_of_order(tmp_path):
    genre = write(tmp_path, "u.genre", "unknown|0\nAction|2\n")
    item = write(tmp_path, "u.item", "1|A|d||u|0|1\n")
    with pytest.raises(DataFormatError) as excinfo:
        read_ml100k_genres(item, genre)
    assert_format_error(excinfo, genre, 2, "Action|2")


def test_ml1m_genres_latin1(tmp_path):
    path = write(tmp_path, "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                         "2::Kolya (Kolja) (1996)::Comedy\n3::Café au lait (1993)::Drama\n",
                 encoding="latin-1")
    facets = read_ml1m_genres(path)
    assert facets.labels == {1: ("Animation", "Children's", "Comedy"), 2: ("Comedy",), 3: ("Drama",)}


@pytest.mark.parametrize("content, line, words", [
    ("", 1, ["empty"]),
    ("1::A (1995)::Drama\n2::B (1995)\n", 2, ["expected 3 fields"]),
    ("1::A (1995)::Drama\nx::B (1995)::Drama\n", 2, ["MovieID must be an integer"]),
    ("1::A (1995)::Drama||Comedy\n", 1, ["genre names"]),
])
def test_ml1m_genres_malformed(tmp_path, content, line, words):
    path = write(tmp_path, "movies.dat", content)
    with pytest.raises(DataFormatError) as excinfo:
        read_ml1m_genres(path)
    assert_format_error(excinfo, path, line, *words)

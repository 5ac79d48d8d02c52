"""Registry, data-dir resolution, checksums, downloads (local ``file://`` fakes, never the internet), archive
members, offline messages, and the processed-dataset cache of ``load_dataset``."""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from seqrec_lib.data import download, loading
from seqrec_lib.data.download import (
    ChecksumMismatchError,
    DataNotFoundError,
    ensure_file,
    file_digests,
    resolve_data_dir,
)
from seqrec_lib.data.loading import load_dataset
from seqrec_lib.data.parsers import DataFormatError, read_ml1m_genres, read_ml100k_ratings
from seqrec_lib.data.preprocess import KCore, Preprocessing
from seqrec_lib.data.registry import DATASETS, Archive, DatasetSpec, FacetSource, SourceFile, get_spec, list_datasets

CONTENT = b"1\t10\t5\t100\n1\t11\t4\t200\n2\t10\t3\t150\n2\t11\t5\t140\n3\t10\t1\t50\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def offline(monkeypatch):
    """No network: every urlopen fails as it does without a connection; the calls are recorded."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download.urllib.request, "urlopen", refuse)
    return calls


@pytest.fixture
def remote(tmp_path) -> Path:
    """A folder standing in for a web server, reached through file:// URLs."""
    folder = tmp_path / "remote"
    folder.mkdir()
    return folder


def make_zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path.read_bytes()


# --------------------------------------------------------------------------------------------- registry

def test_registry_lists_the_datasets_and_rejects_unknown_names():
    assert set(list_datasets()) == {"beauty", "sports", "toys", "ml-100k", "ml-1m", "ml-20m", "amazon-book",
                                    "lfm-1b", "synthetic"}
    with pytest.raises(ValueError, match=r"unknown dataset 'ml-2m'; known datasets: beauty, sports, .*synthetic"):
        get_spec("ml-2m")


def test_registry_entries_are_consistent():
    for spec in DATASETS.values():
        assert spec.description and spec.notes
        for source in spec.source_files:
            assert not Path(source.path).is_absolute()
            assert source.download_url is not None or source.note, source.path
            for digest in source.checksums.values():
                assert len(digest) in (32, 40, 64) and int(digest, 16) >= 0
    assert get_spec("ml-100k").kcore == KCore(10, 5) and get_spec("amazon-book").kcore == KCore(30, 20)
    assert get_spec("lfm-1b").kcore == KCore(300, 500) and get_spec("lfm-1b").interactions.url is None
    assert get_spec("ml-1m").interactions.archive.md5 == "c4d9eecfca2ab87c1945afe126590906"
    assert get_spec("ml-100k").interactions.archive.md5 == "0e33842e24a9c977be4e0107933c0494"
    assert get_spec("ml-1m").interactions.member == "ml-1m/ratings.dat"
    assert any("APPROXIMATION" in note for note in get_spec("ml-20m").notes)
    assert any("inferred, not confirmed" in note for note in get_spec("lfm-1b").notes)


def test_source_file_rejects_half_an_archive():
    with pytest.raises(ValueError, match="archive and member"):
        SourceFile("a/b.txt", archive=Archive("a.zip", "file:///a.zip"))


# ------------------------------------------------------------------------------------------ data dir

REPO = Path(__file__).resolve().parents[1]


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQREC_DATA_DIR", raising=False)
    assert resolve_data_dir() == REPO / "data"  # the checkout's data/, not the working directory's
    monkeypatch.setenv("SEQREC_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir("relative") == tmp_path / "relative"


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A fake repository checkout the package believes it runs from; the working directory is its
    notebooks/ folder, as under papermill (--cwd notebooks), and SEQREC_DATA_DIR is unset."""
    root = tmp_path / "repo"
    (root / "seqrec_lib").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("")
    monkeypatch.setattr(download, "CHECKOUT_ROOT", root)
    monkeypatch.chdir(root / "notebooks")
    monkeypatch.delenv("SEQREC_DATA_DIR", raising=False)
    return root


def test_default_data_dir_is_the_checkouts_from_any_working_directory(checkout):
    (checkout / "data" / "d").mkdir(parents=True)
    (checkout / "data" / "d" / "u.data").write_bytes(CONTENT)
    source = SourceFile("d/u.data", sha256=sha256(CONTENT))
    assert ensure_file(source) == checkout / "data" / "d" / "u.data"


def test_failed_download_into_the_default_data_dir_leaves_nothing_behind(checkout, offline):
    source = SourceFile("s3rec/Beauty.txt", url="https://example.org/data/Beauty.txt")
    with pytest.raises(DataNotFoundError, match=str(checkout / "data" / "s3rec" / "Beauty.txt")):
        ensure_file(source)
    assert not (checkout / "data").exists() and list((checkout / "notebooks").iterdir()) == []


def test_outside_a_checkout_the_default_data_dir_is_the_working_directorys(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHECKOUT_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQREC_DATA_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "data"


# ------------------------------------------------------------------------------------------ checksums

def test_file_digests_match_hashlib_and_git():
    path = Path(__file__)
    data = path.read_bytes()
    digests = file_digests(path, ["sha256", "md5", "git_blob"])
    assert digests["sha256"] == sha256(data) and digests["md5"] == hashlib.md5(data).hexdigest()
    assert digests["git_blob"] == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_git_blob_of_known_content(tmp_path):
    path = tmp_path / "hello"
    path.write_bytes(b"hello\n")
    assert file_digests(path, ["git_blob"])["git_blob"] == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_present_file_is_verified_and_used_without_network(tmp_path, offline):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "u.data").write_bytes(CONTENT)
    source = SourceFile("d/u.data", url="https://example.invalid/u.data", sha256=sha256(CONTENT))
    assert ensure_file(source, tmp_path) == tmp_path / "d" / "u.data"
    assert offline == []


def test_present_file_with_wrong_checksum_names_file_expected_and_actual(tmp_path, offline):
    (tmp_path / "u.data").write_bytes(CONTENT + b"extra")
    source = SourceFile("u.data", url="https://example.invalid/u.data", sha256=sha256(CONTENT))
    with pytest.raises(ChecksumMismatchError) as excinfo:
        ensure_file(source, tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path / "u.data") in message and sha256(CONTENT) in message
    assert sha256(CONTENT + b"extra") in message


# ---------------------------------------------------------------------------------------------- download

def test_download_through_a_temporary_file(tmp_path, remote, capsys):
    (remote / "u.data").write_bytes(CONTENT)
    source = SourceFile("ml/u.data", url=(remote / "u.data").as_uri(), sha256=sha256(CONTENT))
    data_dir = tmp_path / "data"
    path = ensure_file(source, data_dir)
    assert path == data_dir / "ml" / "u.data" and path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["u.data"]  # no temporary file left behind
    assert "downloading u.data" in capsys.readouterr().err  # the progress bar


def test_downloaded_file_with_wrong_checksum_is_not_kept(tmp_path, remote):
    (remote / "u.data").write_bytes(CONTENT[:-3])  # a truncated transfer
    url = (remote / "u.data").as_uri()
    source = SourceFile("u.data", url=url, sha256=sha256(CONTENT))
    with pytest.raises(ChecksumMismatchError, match=f"u.data downloaded from {url}: sha256 checksum mismatch"):
        ensure_file(source, tmp_path / "data")
    assert not (tmp_path / "data").exists()  # neither the file nor the folder made for it


def test_offline_message_names_file_path_and_url(tmp_path, offline):
    source = SourceFile("s3rec/Beauty.txt", url="https://example.org/data/Beauty.txt")
    with pytest.raises(DataNotFoundError) as excinfo:
        ensure_file(source, tmp_path)
    message = str(excinfo.value)
    assert "s3rec/Beauty.txt" in message and str(tmp_path / "s3rec" / "Beauty.txt") in message
    assert "https://example.org/data/Beauty.txt" in message and "name resolution" in message
    assert offline == ["https://example.org/data/Beauty.txt"]
    assert not (tmp_path / "s3rec" / "Beauty.txt").exists()


def test_missing_remote_file_is_data_not_found(tmp_path, remote):
    source = SourceFile("u.data", url=(remote / "nothing-here").as_uri())
    with pytest.raises(DataNotFoundError, match="nothing-here"):
        ensure_file(source, tmp_path / "data")


def test_download_false_never_touches_the_network(tmp_path, offline):
    source = SourceFile("u.data", url="https://example.org/u.data")
    with pytest.raises(DataNotFoundError, match=r"download=False") as excinfo:
        ensure_file(source, tmp_path, download=False)
    assert "https://example.org/u.data" in str(excinfo.value) and offline == []


def test_file_without_url_explains_where_to_put_it(tmp_path):
    source = SourceFile("lfm-1b/LFM-1b_LEs.txt", note="the service is gone")
    with pytest.raises(DataNotFoundError) as excinfo:
        ensure_file(source, tmp_path)
    message = str(excinfo.value)
    assert "the service is gone" in message and str(tmp_path / "lfm-1b" / "LFM-1b_LEs.txt") in message


def test_unwritable_data_dir_is_data_not_found(tmp_path, remote):
    (remote / "u.data").write_bytes(CONTENT)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    source = SourceFile("u.data", url=(remote / "u.data").as_uri())
    with pytest.raises(DataNotFoundError, match="download of .* failed"):
        ensure_file(source, blocker)


# --------------------------------------------------------------------------------------------- archives

def archive_sources(remote: Path, members: dict[str, bytes], archive_md5: str | None = "auto",
                    ) -> tuple[SourceFile, SourceFile]:
    data = make_zip(remote / "ml-fake.zip", members)
    md5 = hashlib.md5(data).hexdigest() if archive_md5 == "auto" else archive_md5
    archive = Archive("ml-fake.zip", (remote / "ml-fake.zip").as_uri(), md5=md5)
    ratings = SourceFile("ml-fake/u.data", sha256=sha256(members["ml-fake/u.data"]), archive=archive,
                         member="ml-fake/u.data")
    items = SourceFile("ml-fake/u.item", archive=archive, member="ml-fake/u.item")
    return ratings, items


def test_archive_member_is_extracted_and_the_archive_kept_for_other_members(tmp_path, remote, monkeypatch):
    ratings, items = archive_sources(remote, {"ml-fake/u.data": CONTENT, "ml-fake/u.item": b"1|x\n"})
    data_dir = tmp_path / "data"
    assert ensure_file(ratings, data_dir).read_bytes() == CONTENT
    assert (data_dir / "ml-fake.zip").exists()

    def refuse(url, *args, **kwargs):
        raise AssertionError("the second member must come from the local archive")

    monkeypatch.setattr(download.urllib.request, "urlopen", refuse)
    assert ensure_file(items, data_dir).read_bytes() == b"1|x\n"
    assert sorted(p.name for p in (data_dir / "ml-fake").iterdir()) == ["u.data", "u.item"]


def test_archive_with_wrong_checksum(tmp_path, remote):
    ratings, _ = archive_sources(remote, {"ml-fake/u.data": CONTENT, "ml-fake/u.item": b""}, archive_md5="0" * 32)
    with pytest.raises(ChecksumMismatchError, match="ml-fake.zip downloaded from .*md5 checksum mismatch"):
        ensure_file(ratings, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_archive_member_with_wrong_checksum(tmp_path, remote):
    ratings, _ = archive_sources(remote, {"ml-fake/u.data": CONTENT, "ml-fake/u.item": b""})
    ratings = SourceFile(ratings.path, sha256="f" * 64, archive=ratings.archive, member=ratings.member)
    with pytest.raises(ChecksumMismatchError, match=r"ml-fake/u.data extracted from .*ml-fake.zip"):
        ensure_file(ratings, tmp_path / "data")
    assert not (tmp_path / "data" / "ml-fake").exists()  # the verified archive stays, the empty folder not
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ml-fake.zip"]


def test_truncated_local_archive_names_the_archive(tmp_path, remote):
    ratings, _ = archive_sources(remote, {"ml-fake/u.data": CONTENT * 50, "ml-fake/u.item": b""}, archive_md5=None)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    whole = (remote / "ml-fake.zip").read_bytes()
    (data_dir / "ml-fake.zip").write_bytes(whole[: len(whole) // 2])
    ratings = SourceFile(ratings.path, archive=ratings.archive, member=ratings.member)
    with pytest.raises(DataFormatError, match=r"ml-fake\.zip: corrupt or truncated zip archive") as excinfo:
        ensure_file(ratings, data_dir)
    assert excinfo.value.path == str(data_dir / "ml-fake.zip")
    assert not (data_dir / "ml-fake" / "u.data").exists()


def test_corrupt_member_data_names_the_archive(tmp_path, remote):
    payload = bytes(range(256)) * 64
    ratings, _ = archive_sources(remote, {"ml-fake/u.data": payload, "ml-fake/u.item": b""}, archive_md5=None)
    raw = bytearray((remote / "ml-fake.zip").read_bytes())
    start = raw.find(b"ml-fake/u.data") + len("ml-fake/u.data") + 10  # inside the compressed data
    raw[start:start + 16] = bytes(16)
    (remote / "ml-fake.zip").write_bytes(bytes(raw))
    source = SourceFile(ratings.path, archive=ratings.archive, member=ratings.member)
    with pytest.raises(DataFormatError, match=r"ml-fake\.zip: corrupt or truncated zip archive"):
        ensure_file(source, tmp_path / "data")


def test_archive_without_the_member(tmp_path, remote):
    ratings, _ = archive_sources(remote, {"ml-fake/u.data": CONTENT, "ml-fake/u.item": b""})
    source = SourceFile("ml-fake/ratings.dat", archive=ratings.archive, member="ml-fake/ratings.dat")
    with pytest.raises(DataFormatError, match=r"no member 'ml-fake/ratings.dat' \(members: ml-fake/u.data"):
        ensure_file(source, tmp_path / "data")


def test_missing_archive_offline_names_member_archive_and_url(tmp_path, offline):
    source = get_spec("ml-1m").interactions
    with pytest.raises(DataNotFoundError) as excinfo:
        ensure_file(source, tmp_path)
    message = str(excinfo.value)
    for text in ("ml-1m/ratings.dat", str(tmp_path / "ml-1m" / "ratings.dat"), str(tmp_path / "ml-1m.zip"),
                 "https://files.grouplens.org/datasets/movielens/ml-1m.zip"):
        assert text in message


# ------------------------------------------------------------------------------------ load_dataset cache

MOVIES = b"10::A (1995)::Drama\n11::B (1996)::Comedy|Drama\n"


@pytest.fixture
def fake_spec(tmp_path, remote, monkeypatch) -> DatasetSpec:
    """A registered-looking dataset served from file:// URLs, with no known checksums."""
    (remote / "u.data").write_bytes(CONTENT)
    (remote / "movies.dat").write_bytes(MOVIES)
    spec = DatasetSpec(
        name="fake",
        description="fake",
        interactions=SourceFile("fake/u.data", url=(remote / "u.data").as_uri()),
        parser=read_ml100k_ratings,
        preprocessing=Preprocessing(kcore=KCore(2, 2)),
        has_timestamps=True,
        facets=(FacetSource((SourceFile("fake/movies.dat", url=(remote / "movies.dat").as_uri()),),
                            read_ml1m_genres),),
        notes=("test",),
    )
    monkeypatch.setattr(loading, "get_spec", lambda name: spec if name == "fake" else get_spec(name))
    return spec


def test_load_dataset_downloads_parses_and_caches(tmp_path, fake_spec, monkeypatch):
    cache = tmp_path / "cache"
    data = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    # 3 users x 2 items, user 3 has one item -> 2/2-core keeps users 1, 2
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 2, 4)
    np.testing.assert_array_equal(data.items, [1, 2, 2, 1])  # user 2 took item 11 (ts 140) before 10 (ts 150)
    np.testing.assert_array_equal(data.timestamps, [100, 200, 140, 150])
    assert data.item_facets["genre"] == [(), ("Drama",), ("Comedy", "Drama")]
    assert data.provenance["sources"]["fake/u.data"]["sha256"] == sha256(CONTENT)
    assert data.provenance["preprocessing"]["kcore"] == {"user_min": 2, "item_min": 2}
    assert len(list(cache.glob("fake-*.npz"))) == 1 and len(list(cache.glob("fake-*.json"))) == 1

    def broken(*args, **kwargs):
        raise AssertionError("a cached dataset must not be preprocessed again")

    monkeypatch.setattr(loading, "preprocess", broken)
    again = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    np.testing.assert_array_equal(again.items, data.items)
    np.testing.assert_array_equal(again.offsets, data.offsets)
    np.testing.assert_array_equal(again.timestamps, data.timestamps)
    assert again.item_facets == data.item_facets and again.provenance == data.provenance


def test_cache_key_changes_with_parameters_and_sources(tmp_path, fake_spec):
    cache = tmp_path / "cache"
    load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    other = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache,
                         preprocessing=Preprocessing(kcore=KCore(1, 1)))
    assert other.n_users == 3
    (tmp_path / "data" / "fake" / "u.data").write_bytes(CONTENT + b"3\t11\t2\t60\n")
    changed = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    assert changed.n_users == 3
    assert len({p.stem for p in cache.glob("fake-*.npz")}) == 3
    keys = {loading.cache_key(fake_spec, Preprocessing(kcore=KCore(k, 2)), {"fake/u.data": "x"}) for k in (2, 3)}
    assert len(keys) == 2


def test_unwritable_cache_only_warns(tmp_path, fake_spec):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="could not write the dataset cache"):
        data = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=blocker)
    assert data.n_users == 2


def test_corrupt_cache_entry_is_rebuilt_with_a_warning(tmp_path, fake_spec):
    cache = tmp_path / "cache"
    load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    next(cache.glob("fake-*.npz")).write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        data = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    assert data.n_interactions == 4


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "c"))
    assert loading.resolve_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SEQREC_CACHE_DIR")
    assert loading.resolve_cache_dir() == Path.home() / ".cache" / "seqrec"


def test_load_dataset_offline_without_files(tmp_path, offline):
    with pytest.raises(DataNotFoundError, match="s3rec/Beauty.txt"):
        load_dataset("beauty", data_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_load_dataset_argument_checks(tmp_path):
    from seqrec_lib.data.synthetic import SyntheticConfig

    with pytest.raises(ValueError, match="synthetic= only applies"):
        load_dataset("beauty", data_dir=tmp_path, synthetic=SyntheticConfig.smoke())
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope")

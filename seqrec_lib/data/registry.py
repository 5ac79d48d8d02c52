"""The dataset registry: where each dataset's raw files come from, how they are parsed and preprocessed.

Checksums are the real values of the files we verified (docs/data.md §1), GroupLens' published archive MD5s or the
specs; a checksum nobody has verified is None rather than invented. Paths are relative to the data dir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from . import parsers
from .preprocess import KCore, Preprocessing

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
S3REC = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/2a81540ae18615d88ef88227b0c066e5b74781e5/data"
SNAP_AMAZON = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"


@dataclass(frozen=True)
class Archive:
    """A zip archive holding source files: ``path`` (relative to the data dir), official ``url``, checksums."""

    path: str
    url: str
    md5: str | None = None
    sha256: str | None = None

    @property
    def checksums(self) -> dict[str, str]:
        """Algorithm → expected hex digest, for the known ones only."""
        return {k: v for k, v in (("sha256", self.sha256), ("md5", self.md5)) if v is not None}


@dataclass(frozen=True)
class SourceFile:
    """One raw file, ``path`` relative to the data dir.

    It is downloaded from ``url``, or extracted as ``member`` of ``archive``; ``url`` is None (and
    ``note`` says why) when there is no official download. Unknown checksums are None; ``git_blob`` is
    ``git hash-object`` of the file, which MANIFEST.md records for every file.
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    git_blob: str | None = None
    archive: Archive | None = None
    member: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"SourceFile {self.path}: give both archive and member, or neither")
        if self.archive is not None and self.url is not None:
            raise ValueError(f"SourceFile {self.path}: a file comes from url or from an archive, not both")

    @property
    def checksums(self) -> dict[str, str]:
        """Algorithm → expected hex digest of the file itself, for the known ones only."""
        known = (("sha256", self.sha256), ("md5", self.md5), ("git_blob", self.git_blob))
        return {k: v for k, v in known if v is not None}

    @property
    def download_url(self) -> str | None:
        return self.archive.url if self.archive is not None else self.url


@dataclass(frozen=True)
class FacetSource:
    """Item facets read by ``reader(*paths of files)`` → ``ItemFacets``."""

    files: tuple[SourceFile, ...]
    reader: Callable[..., parsers.ItemFacets]


@dataclass(frozen=True)
class ExpectedStats:
    """Counts after preprocessing, with where they were established."""

    users: int
    items: int
    interactions: int
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its interaction file and parser (None for generated data), preprocessing (with the
    k-core rule), whether it has timestamps, expected statistics, item facets and notes."""

    name: str
    description: str
    interactions: SourceFile | None
    parser: Callable[[Path], parsers.Interactions] | None
    preprocessing: Preprocessing
    has_timestamps: bool
    expected: ExpectedStats | None = None
    facets: tuple[FacetSource, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def kcore(self) -> KCore | None:
        return self.preprocessing.kcore

    @property
    def source_files(self) -> tuple[SourceFile, ...]:
        """The interaction file, then every facet file (duplicates removed, order kept)."""
        files = ([self.interactions] if self.interactions else []) + [f for s in self.facets for f in s.files]
        return tuple(dict.fromkeys(files))


def _s3rec(name: str, file: str, sha256: str, git_blob: str, facet_sha256: str, facet_blob: str,
           expected: tuple[int, int, int], description: str) -> DatasetSpec:
    attributes = SourceFile(f"s3rec/{file}_item2attributes.json", url=f"{S3REC}/{file}_item2attributes.json",
                            sha256=facet_sha256, git_blob=facet_blob)
    return DatasetSpec(
        name=name,
        description=description,
        interactions=SourceFile(f"s3rec/{file}.txt", url=f"{S3REC}/{file}.txt", sha256=sha256, git_blob=git_blob),
        parser=parsers.read_s3rec_sequences,
        preprocessing=Preprocessing(),
        has_timestamps=False,
        expected=ExpectedStats(*expected, source="docs/data.md §3, checked against the data files"),
        facets=(FacetSource((attributes,), parsers.read_s3rec_item_attributes),),
        notes=("S3-Rec/ICLRec file, already 5-core and in time order (docs/data.md §2); ids are kept as they are.",
               "Facet 'attribute': brand and category ids from S3-Rec's item2attributes (not used by FAME)."),
    )


_ML100K_ZIP = Archive("ml-100k.zip", f"{GROUPLENS}/ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0494")
_ML1M_ZIP = Archive("ml-1m.zip", f"{GROUPLENS}/ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906")
_ML20M_ZIP = Archive("ml-20m.zip", f"{GROUPLENS}/ml-20m.zip", md5="cd245b17a1ae2cc31bb14903e1204af3")

_SPECS = (
    _s3rec("beauty", "Beauty", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
           "a29773026846d857ec8176cb25f37b23ecf20155",
           "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
           "805189e7a6dd1005ef38344f5d556f27b8dc240f", (22_363, 12_101, 198_502),
           "Amazon Beauty (McAuley 2014 5-core reviews), S3-Rec preprocessing"),
    _s3rec("sports", "Sports_and_Outdoors", "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
           "50a7023ca502b42eb0e840c603abda6e851b2018",
           "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
           "7c2e9a40c6534163fd8d6d1e3abfbfb860f137b6", (35_598, 18_357, 296_337),
           "Amazon Sports and Outdoors (McAuley 2014 5-core reviews), S3-Rec preprocessing"),
    _s3rec("toys", "Toys_and_Games", "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
           "5459307b30f65949605b34d350bfad37586a1b97",
           "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
           "d13b361c07f57fc032014b86a0723461bbc8e30d", (19_412, 11_924, 167_597),
           "Amazon Toys and Games (McAuley 2014 5-core reviews), S3-Rec preprocessing"),
    DatasetSpec(
        name="ml-100k",
        description="MovieLens 100K ratings as implicit feedback, with MOJITO's ML-1M 10/5-core",
        interactions=SourceFile("ml-100k/u.data",
                                sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                                git_blob="16ef21ed827cae1a3f71e89e23cffb5a8f44baae",
                                archive=_ML100K_ZIP, member="ml-100k/u.data"),
        parser=parsers.read_ml100k_ratings,
        preprocessing=Preprocessing(kcore=KCore(10, 5)),
        has_timestamps=True,
        expected=ExpectedStats(943, 1_349, 99_287, "docs/data.md §5, checked against the file"),
        facets=(FacetSource(
            (SourceFile("ml-100k/u.item", sha256="553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                        git_blob="91bb56d53fcb5f8bbac079755593b48d34cfc9a7", archive=_ML100K_ZIP,
                        member="ml-100k/u.item"),
             SourceFile("ml-100k/u.genre", sha256="9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
                        git_blob="ae1e29c6c5224db09a8fddca9c4bd46523caff21", archive=_ML100K_ZIP,
                        member="ml-100k/u.genre")),
            parsers.read_ml100k_genres),),
        notes=("Not a paper dataset: the only real dataset with timestamps available offline (docs/data.md §5).",
               "The zip's MD5 is GroupLens' published value; the unzipped files' checksums are from MANIFEST.md."),
    ),
    DatasetSpec(
        name="ml-1m",
        description="MovieLens 1M ratings as implicit feedback, MOJITO's 10/5-core (docs/data.md §5)",
        interactions=SourceFile("ml-1m/ratings.dat", git_blob="77a7c4b150f588c23bb9e1f068aa996c0b413695",
                                archive=_ML1M_ZIP, member="ml-1m/ratings.dat"),
        parser=parsers.read_ml1m_ratings,
        preprocessing=Preprocessing(kcore=KCore(10, 5)),
        has_timestamps=True,
        expected=ExpectedStats(6_040, 3_416, 999_611,
                               "docs/data.md §5, checked on the user-movie pairs of the local ML-1M copy"),
        facets=(FacetSource(
            (SourceFile("ml-1m/movies.dat", sha256="0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
                        git_blob="9a735435722829dad68446ef1c30d001d5d00c1d", archive=_ML1M_ZIP,
                        member="ml-1m/movies.dat"),),
            parsers.read_ml1m_genres),),
        notes=("ratings.dat is not available offline; its sha256 is unknown, its git blob id is from MANIFEST.md.",),
    ),
    DatasetSpec(
        name="ml-20m",
        description="MovieLens 20M, FAME's ML-20m approximated as in docs/data.md §4",
        interactions=SourceFile("ml-20m/ratings.csv", archive=_ML20M_ZIP, member="ml-20m/ratings.csv"),
        parser=parsers.read_ml20m_ratings,
        preprocessing=Preprocessing(min_rating=4.0, min_user_interactions=20, keep_last=20, kcore=KCore(5, 5)),
        has_timestamps=True,
        notes=("APPROXIMATION (inferred, not confirmed): FAME's ML-20m preprocessing is unpublished (docs/data.md "
               "§4). Default variant: ratings >= 4, users with >= 20 of them, each user's 20 most recent, "
               "then a 5-core. Report the deviation from FAME's Table 1 (96,726 users / 16,297 items / "
               "1,856,746 interactions); other variants go through load_dataset(preprocessing=...).",
               "ratings.csv is ordered by (userId, movieId), so the stable time sort breaks ties by movieId "
               "as docs/data.md §4 says.",
               "The zip's MD5 is GroupLens' published value (ml-20m.zip.md5); ratings.csv's checksum is unknown."),
    ),
    DatasetSpec(
        name="amazon-book",
        description="Amazon Books (McAuley 2014 'ratings only'), MOJITO's 30/20-core (docs/data.md §5)",
        interactions=SourceFile("amazon/ratings_Books.csv", url=f"{SNAP_AMAZON}/ratings_Books.csv"),
        parser=parsers.read_amazon_ratings,
        preprocessing=Preprocessing(kcore=KCore(30, 20)),
        has_timestamps=True,
        notes=("Timestamps have day granularity, so ties are frequent; they keep the file order.",
               "No verified checksum. A third-party loader (omnirec) lists sha256 "
               "87d923ddac2aacf40c1d0e0e056dbf4bf69c9c7d41852c6b434e781e759c0707; not checked here.",
               "MOJITO's statistics table was not available to us, so no expected counts."),
    ),
    DatasetSpec(
        name="lfm-1b",
        description="LFM-1b listening events (item = track), MOJITO's 300/500-core",
        interactions=SourceFile("lfm-1b/LFM-1b_LEs.txt",
                                note="the LFM-1b download service is gone: put your own copy of LFM-1b_LEs.txt "
                                     "(tab-separated user, artist, album, track, timestamp) there"),
        parser=parsers.read_lfm1b_events,
        preprocessing=Preprocessing(kcore=KCore(300, 500)),
        has_timestamps=True,
        notes=("Preprocessing inferred, not confirmed: MOJITO's released code reads an already-filtered file; "
               "its config suggests collapsing repeats within 3 h and keeping the last 365 days of users with "
               ">= 365 days of history (docs/data.md §5). Only the 300/500-core is applied here.",
               "The full file has about 1.09 billion events; parsing it needs tens of GB of memory."),
    ),
    DatasetSpec(
        name="synthetic",
        description="Generated sequences with planted facets (genre, creator) and time-of-day/weekday effects",
        interactions=None,
        parser=None,
        preprocessing=Preprocessing(),
        has_timestamps=True,
        notes=("No files: load_dataset('synthetic', synthetic=SyntheticConfig(...)) generates it.",),
    ),
)

DATASETS: MappingProxyType[str, DatasetSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The spec of ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None

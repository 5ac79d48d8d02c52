"""Synthetic sequences with planted item facets, user preferences, time effects and series order.

Items have a ``genre`` and a ``creator`` (independent of each other); a creator's items form a series in
id order. Every facet value has a time slot shared by all users (even value ids: weekday daytime, Mon-Fri
08:00-17:59 UTC; odd ids: evenings and weekends — think work vs leisure genres). Every user follows ONE
dominant facet (genre or creator) with ``n_preferred`` preferred values, half from each slot.
The time effect is *lagged*: a pick follows the time context of the user's previous visit (the first pick
its own), so it is revealed by the input timestamps and not by the items before it. (A time-aware model
such as MOJITO ranks from its inputs; the target's own time shifts every candidate's score alike,
docs/mojito.md §6 and M8, so an effect tied to the target's time could not be used for ranking.) At each step the user

1. continues the series of the previous item (its creator's next item) with probability ``p_series``;
2. otherwise, with probability ``p_preferred``, takes a preferred value of the current time context and an
   unseen item with it (the next unread item of a creator; a popularity-weighted item of a genre);
3. otherwise picks an unseen item by global (Zipf) popularity among the genres of the current time slot
   (what everybody drifts to at that time).

No user repeats an item. Visits are days apart (gaps of mean ``mean_gap_days``) at realistic hours; with
``p_same_session`` > 0 some follow minutes after the previous one (then the items also hint at the context).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .sequences import SequenceData

FACETS: tuple[str, ...] = ("genre", "creator")
CONTEXTS: tuple[str, ...] = ("weekday daytime", "evening or weekend")
REASONS: tuple[str, ...] = ("series", "preferred", "popular")
SERIES, PREFERRED, POPULAR = range(len(REASONS))
_DAY = 86_400
# relative activity per UTC hour: quiet nights, busy days and evenings
_HOUR_WEIGHTS = np.array([0.2] * 7 + [0.5] + [1.5] * 10 + [1.5] * 6)


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes, behaviour probabilities and seed of the generator (defaults: CPU-test sized)."""

    n_users: int = 1000
    n_items: int = 500
    n_genres: int = 20
    n_creators: int = 50
    min_length: int = 8
    max_length: int = 40
    genre_user_fraction: float = 0.5
    n_preferred: int = 4
    p_series: float = 0.25
    p_preferred: float = 0.7
    popularity_exponent: float = 1.0
    mean_gap_days: float = 2.0
    p_same_session: float = 0.0
    start: int = 1_609_718_400  # 2021-01-04 00:00 UTC, a Monday
    start_spread_days: int = 180
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_users >= 1": self.n_users >= 1,
            "n_preferred >= 2": self.n_preferred >= 2,
            "n_genres // 2 >= n_preferred - n_preferred // 2 (each time slot holds half the genres)":
                self.n_genres // 2 >= self.n_preferred - self.n_preferred // 2,
            "n_creators // 2 >= n_preferred - n_preferred // 2 (each time slot holds half the creators)":
                self.n_creators // 2 >= self.n_preferred - self.n_preferred // 2,
            "n_items >= max(n_genres, n_creators)": self.n_items >= max(self.n_genres, self.n_creators),
            "4 <= min_length <= max_length <= n_items": 4 <= self.min_length <= self.max_length <= self.n_items,
            "0 <= genre_user_fraction <= 1": 0 <= self.genre_user_fraction <= 1,
            "0 <= p_series <= 1": 0 <= self.p_series <= 1,
            "0 <= p_preferred <= 1": 0 <= self.p_preferred <= 1,
            "mean_gap_days >= 0": self.mean_gap_days >= 0,
            "0 <= p_same_session < 1": 0 <= self.p_same_session < 1,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"SyntheticConfig: {'; '.join(failed)} does not hold for {self}")

    @classmethod
    def smoke(cls, seed: int = 0) -> "SyntheticConfig":
        """A tiny world for fast tests (64 users, 60 items)."""
        return cls(n_users=64, n_items=60, n_genres=4, n_creators=8, min_length=6, max_length=14, seed=seed)


@dataclass(frozen=True)
class SyntheticTruth:
    """What was planted. Per user u (index u-1): ``dominant_facet`` [n_users] ("genre" or "creator") and
    ``preferred`` [n_users] of (weekday-daytime values, evening/weekend values). Per item: ``item_facets``
    (the same lists as ``SequenceData.item_facets``). Per interaction (flat, as ``SequenceData.items``):
    ``contexts`` [N] the context the pick followed (0 weekday daytime, 1 evening/weekend; see
    ``pick_contexts``) and ``reasons`` [N] (index into REASONS)."""

    dominant_facet: np.ndarray
    preferred: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    item_facets: dict[str, list[tuple[str, ...]]]
    contexts: np.ndarray
    reasons: np.ndarray

    def preferred_values(self, user: int) -> tuple[str, ...]:
        """All preferred values of ``user`` (1-based), both contexts."""
        day, evening = self.preferred[user - 1]
        return day + evening


def pick_contexts(timestamps: np.ndarray) -> np.ndarray:
    """One user's [n] timestamps → [n] the context each pick follows: that of the previous visit (lagged
    time effect); the first pick follows its own."""
    context = time_context(timestamps)
    return np.concatenate([context[:1], context[:-1]])


def time_context(timestamps: np.ndarray) -> np.ndarray:
    """[N] unix seconds → [N] int64: 0 = weekday daytime (Mon-Fri, 08:00-17:59 UTC), 1 = evening or weekend."""
    ts = np.asarray(timestamps, dtype=np.int64)
    weekday = (ts // _DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = ts % _DAY // 3600
    return np.where((weekday < 5) & (hour >= 8) & (hour < 18), 0, 1).astype(np.int64)


@dataclass(frozen=True)
class _World:
    """Item attributes, index = item id (0 = padding): facet value ids, next item in series, popularity."""

    values: dict[str, np.ndarray]   # facet → [n_items + 1] value id (-1 at padding)
    next_in_series: np.ndarray      # [n_items + 1] next item of the same creator, 0 = none
    popularity: np.ndarray          # [n_items + 1] Zipf weights, 0 at padding


def _make_world(config: SyntheticConfig, rng: np.random.Generator) -> _World:
    n = config.n_items
    genre = np.concatenate([[-1], rng.permutation(n) % config.n_genres])
    creator = np.concatenate([[-1], rng.permutation(n) % config.n_creators])
    next_in_series = np.zeros(n + 1, dtype=np.int64)
    for c in range(config.n_creators):
        series = np.flatnonzero(creator == c)  # item ids in increasing order = series order
        next_in_series[series[:-1]] = series[1:]
    popularity = np.concatenate([[0.0], 1.0 / (rng.permutation(n) + 1.0) ** config.popularity_exponent])
    return _World({"genre": genre, "creator": creator}, next_in_series, popularity)


def _timestamps(config: SyntheticConfig, length: int, rng: np.random.Generator) -> np.ndarray:
    """[length] increasing unix seconds, in sessions: with probability ``p_same_session`` the next
    interaction follows 2-15 minutes after the previous one (the same sitting, so the same time context);
    otherwise a new session starts after a geometric number of days at an hour drawn from _HOUR_WEIGHTS."""
    hour_p = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
    ts = np.empty(length, dtype=np.int64)
    day = config.start // _DAY + int(rng.integers(0, config.start_spread_days + 1))
    for t in range(length):
        if t and rng.random() < config.p_same_session:
            ts[t] = ts[t - 1] + int(rng.integers(120, 900))
            continue
        day += int(rng.geometric(1.0 / (1.0 + config.mean_gap_days))) - (1 if t == 0 else 0)
        start = day * _DAY + int(rng.choice(24, p=hour_p)) * 3600 + int(rng.integers(0, 3600))
        ts[t] = max(start, ts[t - 1] + 3600) if t else start
    return ts


def _pick(world: _World, seen: np.ndarray, rng: np.random.Generator, facet: str | None = None,
          value: int | None = None, slot: int | None = None) -> int:
    """An unseen item: the next of creator ``value``, a popular one of genre ``value``, or (facet None) a
    popular one among the genres of time ``slot`` (any genre when slot is None); 0 when none is left."""
    allowed = ~seen if facet is None else ~seen & (world.values[facet] == value)
    if slot is not None:
        allowed &= world.values["genre"] % 2 == slot
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0:
        return 0
    if facet == "creator":
        return int(candidates[0])
    weights = world.popularity[candidates]
    return int(rng.choice(candidates, p=weights / weights.sum()))


def _user_sequence(config: SyntheticConfig, world: _World, facet: str, groups: tuple[np.ndarray, np.ndarray],
                   contexts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One user's items [n] and the reason of each pick [n]."""
    seen = np.zeros(config.n_items + 1, dtype=bool)
    seen[0] = True
    items = np.zeros(len(contexts), dtype=np.int64)
    reasons = np.zeros(len(contexts), dtype=np.int64)
    for t, context in enumerate(contexts):
        follow = world.next_in_series[items[t - 1]] if t else 0
        item, reason = 0, POPULAR
        if follow and not seen[follow] and rng.random() < config.p_series:
            item, reason = follow, SERIES
        elif rng.random() < config.p_preferred:
            item, reason = _pick(world, seen, rng, facet, int(rng.choice(groups[context]))), PREFERRED
        if item == 0:
            item, reason = _pick(world, seen, rng, slot=int(context)), POPULAR
        if item == 0:
            item, reason = _pick(world, seen, rng), POPULAR
        items[t], reasons[t] = item, reason
        seen[item] = True
    return items, reasons


def _label(facet: str, value: int) -> str:
    """The label of a facet value: genre 3 → "g3", creator 12 → "c12"."""
    return f"{facet[0]}{value}"


def _labels(world: _World) -> dict[str, list[tuple[str, ...]]]:
    return {f: [()] + [(_label(f, v),) for v in world.values[f][1:]] for f in FACETS}


def generate_synthetic(config: SyntheticConfig | None = None) -> tuple[SequenceData, SyntheticTruth]:
    """A seeded synthetic dataset (timestamps, facets ``genre`` and ``creator``) and what was planted."""
    config = config or SyntheticConfig()
    rng = np.random.default_rng(config.seed)
    world = _make_world(config, rng)
    labels = _labels(world)
    lengths = rng.integers(config.min_length, config.max_length + 1, config.n_users)
    dominant = np.where(rng.random(config.n_users) < config.genre_user_fraction, "genre", "creator")
    half = config.n_preferred // 2
    items, stamps, contexts, reasons, preferred = [], [], [], [], []
    for user in range(config.n_users):
        facet = str(dominant[user])
        n_values = config.n_genres if facet == "genre" else config.n_creators
        slots = np.arange(n_values) % 2
        groups = (rng.choice(np.flatnonzero(slots == 0), half, replace=False),
                  rng.choice(np.flatnonzero(slots == 1), config.n_preferred - half, replace=False))
        ts = _timestamps(config, int(lengths[user]), rng)
        context = pick_contexts(ts)
        user_items, user_reasons = _user_sequence(config, world, facet, groups, context, rng)
        items.append(user_items)
        stamps.append(ts)
        contexts.append(context)
        reasons.append(user_reasons)
        preferred.append(tuple(tuple(_label(facet, v) for v in g) for g in groups))
    data = SequenceData(
        name="synthetic",
        n_users=config.n_users,
        n_items=config.n_items,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=np.concatenate(items),
        timestamps=np.concatenate(stamps),
        item_facets=labels,
        provenance={"generator": "seqrec_lib.data.synthetic", "config": asdict(config)},
    )
    truth = SyntheticTruth(dominant, tuple(preferred), labels, np.concatenate(contexts), np.concatenate(reasons))
    return data, truth

"""The exchange's publishers: apps and sites that offer ad slots.

Domains use the reserved ``.example`` top-level domain (RFC 2606) so that nothing a DSP
does with them ever reaches a real site.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class App:
    """An app on both stores: ``android_bundle`` is a package name, ``ios_bundle`` a store id."""

    name: str
    android_bundle: str
    ios_bundle: str
    cat: tuple[str, ...]
    publisher_id: str
    publisher: str


@dataclass(frozen=True, slots=True)
class Site:
    domain: str
    paths: tuple[str, ...]
    cat: tuple[str, ...]
    publisher_id: str
    publisher: str


# Categories are IAB Content Taxonomy 1.0 codes, OpenRTB's default (cattax 1).
APPS: tuple[App, ...] = (
    App(
        "Daily Headlines",
        "com.example.headlines",
        "6443910001",
        ("IAB12",),
        "pub-101",
        "Headline Media",
    ),
    App(
        "Weather Now",
        "com.example.weather",
        "6443910002",
        ("IAB15", "IAB15-10"),
        "pub-102",
        "Skyline Apps",
    ),
    App(
        "Puzzle Garden",
        "com.example.puzzlegarden",
        "6443910003",
        ("IAB9", "IAB9-30"),
        "pub-103",
        "Leaf Games",
    ),
    App(
        "Street Racer",
        "com.example.streetracer",
        "6443910004",
        ("IAB9", "IAB2"),
        "pub-103",
        "Leaf Games",
    ),
    App(
        "Short Video Hub",
        "com.example.shortvideo",
        "6443910005",
        ("IAB1", "IAB1-7"),
        "pub-104",
        "Clip Studio",
    ),
    App(
        "Market Watch Pro",
        "com.example.marketwatch",
        "6443910006",
        ("IAB13", "IAB13-11"),
        "pub-105",
        "Ledger Labs",
    ),
    App(
        "Fit Steps",
        "com.example.fitsteps",
        "6443910007",
        ("IAB7", "IAB17"),
        "pub-106",
        "Pulse Health",
    ),
    App(
        "Trip Planner", "com.example.tripplanner", "6443910008", ("IAB20",), "pub-107", "Wander Inc"
    ),
    App("Recipe Box", "com.example.recipebox", "6443910009", ("IAB8",), "pub-108", "Kitchen Table"),
    App(
        "Music Stream",
        "com.example.musicstream",
        "6443910010",
        ("IAB1", "IAB1-6"),
        "pub-104",
        "Clip Studio",
    ),
    App(
        "Photo Editor",
        "com.example.photoeditor",
        "6443910011",
        ("IAB9", "IAB9-23"),
        "pub-109",
        "Pixel Works",
    ),
    App("Shop Deals", "com.example.shopdeals", "6443910012", ("IAB22",), "pub-110", "Bargain Co"),
)

SITES: tuple[Site, ...] = (
    Site(
        "dailynews.example",
        ("/world", "/business", "/tech/article-4821"),
        ("IAB12",),
        "pub-201",
        "Daily News Group",
    ),
    Site(
        "autoreview.example",
        ("/suv", "/ev/best-2025", "/reviews/sedan"),
        ("IAB2",),
        "pub-202",
        "Auto Review",
    ),
    Site(
        "styleweekly.example",
        ("/beauty", "/fashion/trends", "/looks"),
        ("IAB18",),
        "pub-203",
        "Style Weekly",
    ),
    Site(
        "travelnotes.example",
        ("/asia", "/europe/paris", "/deals"),
        ("IAB20",),
        "pub-204",
        "Travel Notes",
    ),
    Site(
        "techforum.example",
        ("/phones", "/laptops/review", "/threads/1182"),
        ("IAB19",),
        "pub-205",
        "Tech Forum",
    ),
    Site(
        "parentsclub.example", ("/baby", "/school", "/health"), ("IAB6",), "pub-206", "Parents Club"
    ),
)

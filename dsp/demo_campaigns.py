"""Twenty sample campaigns for ``dsp demo``: a spread of targeting, prices and formats."""

from __future__ import annotations

from typing import Any

_SAMPLES: tuple[tuple[str, str | None, list[str], list[str], int], ...] = (
    # name, tag expression, countries, os, CPM in USD micros
    (
        "EV launch",
        "interest.automotive.new_energy_vehicle OR interest.automotive.purchase_intent >= 60",
        ["CHN"],
        [],
        6_000_000,
    ),
    (
        "SUV test drive",
        "interest.automotive AND base.gender.male AND NOT base.age.under_18",
        [],
        [],
        4_500_000,
    ),
    (
        "Outbound travel",
        "interest.travel.outbound OR interest.travel.purchase_intent >= 50",
        [],
        [],
        3_800_000,
    ),
    (
        "Skincare for her",
        "base.gender.female AND (interest.beauty.skincare OR interest.beauty)",
        [],
        [],
        3_200_000,
    ),
    (
        "Young gamers",
        "usage.app_games AND (base.age.18_24 OR base.age.25_34)",
        [],
        ["android"],
        2_600_000,
    ),
    (
        "New parents",
        "social.life_stage.new_parent OR social.parenthood.child_0_1"
        " OR social.parenthood.expecting",
        [],
        [],
        3_500_000,
    ),
    (
        "Premium phones",
        "usage.device_price_tier.above_6000 OR base.income.20k_50k OR base.income.above_50k",
        [],
        ["ios"],
        5_200_000,
    ),
    ("Tier-1 city finance", "social.city_tier.tier_1 AND interest.finance", ["CHN"], [], 4_000_000),
    ("Fitness app", "interest.sports OR interest.health", [], [], 2_200_000),
    ("Food delivery", "usage.app_local_services OR interest.food", ["CHN"], [], 1_800_000),
    ("Education courses", "interest.education AND NOT base.age.under_18", [], [], 2_400_000),
    ("Pet supplies", "interest.pets", [], [], 2_000_000),
    ("Home makeover", "interest.home OR interest.real_estate", [], [], 2_900_000),
    ("Music streaming", "interest.music OR usage.app_music_reading", [], [], 1_500_000),
    ("Fashion sale", "interest.fashion AND base.gender.female", [], [], 2_700_000),
    ("Tech gadgets", "interest.tech AND base.gender.male", [], [], 2_300_000),
    ("Video membership", "usage.app_video OR interest.video", [], [], 1_600_000),
    ("Outdoor gear", "interest.outdoor", [], [], 2_100_000),
    ("Brand awareness (run of network)", None, [], [], 800_000),
    ("Guangdong local", None, ["CHN"], [], 1_000_000),
)

_BANNER_SIZES = ((300, 250), (320, 50), (728, 90), (320, 480))


def _creatives(index: int) -> list[dict[str, Any]]:
    domain = f"brand{index:02d}.example.com"
    common = {"landing_url": f"https://{domain}/offer", "adomain": [domain], "cat": ["IAB22"]}
    creatives: list[dict[str, Any]] = [
        {
            "id": f"c{index:02d}-b{w}x{h}",
            "format": "banner",
            "w": w,
            "h": h,
            "image_url": f"https://cdn.example.com/{domain}/{w}x{h}.png",
            **common,
        }
        for w, h in _BANNER_SIZES
    ]
    creatives.append(
        {
            "id": f"c{index:02d}-native",
            "format": "native",
            "title": f"Offer {index}",
            "description": "A sample native ad",
            "image_url": f"https://cdn.example.com/{domain}/native.png",
            **common,
        }
    )
    if index % 3 == 0:
        creatives.append(
            {
                "id": f"c{index:02d}-video",
                "format": "video",
                "media_url": f"https://cdn.example.com/{domain}/spot.mp4",
                "duration_s": 15,
                **common,
            }
        )
    return creatives


def demo_campaigns(budget_micros: int = 2_000_000_000) -> list[dict[str, Any]]:
    """Campaign payloads, one per sample, each with banners, a native ad and sometimes video."""
    campaigns = []
    for index, (name, tags, countries, os, cpm) in enumerate(_SAMPLES, start=1):
        targeting: dict[str, Any] = {"countries": countries, "os": os}
        if tags:
            targeting["tags"] = tags
        if name == "Guangdong local":
            targeting["regions"] = ["GD"]
        campaigns.append(
            {
                "id": f"demo-{index:02d}",
                "advertiser_id": f"adv-{(index - 1) % 5 + 1}",
                "name": name,
                "bid": {"strategy": "fixed_cpm", "cpm_micros": cpm},
                "budget": {"total_micros": budget_micros, "daily_micros": budget_micros},
                "targeting": targeting,
                "creatives": _creatives(index),
            }
        )
    return campaigns

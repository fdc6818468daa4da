"""Where synthetic devices live: countries, ISO 3166-2 regions and cities with coordinates.

Mostly Chinese provinces (the DMP's home market) with a few foreign markets, so that geo
targeting by country, region, city and radius all have something to match.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class City:
    """A city with approximate centre coordinates; ``tier`` is the Chinese city tier, if any."""

    country: str
    region: str
    name: str
    lat: float
    lon: float
    tier: str | None
    weight: float


def _cn(region: str, name: str, lat: float, lon: float, tier: str, weight: float) -> City:
    return City("CHN", region, name, lat, lon, tier, weight)


def _abroad(country: str, region: str, name: str, lat: float, lon: float, w: float) -> City:
    return City(country, region, name, lat, lon, None, w)


# Weights are rough shares of the simulated audience, not census figures; about 88% China.
CITIES: tuple[City, ...] = (
    _cn("BJ", "Beijing", 39.904, 116.407, "tier_1", 8.0),
    _cn("SH", "Shanghai", 31.230, 121.474, "tier_1", 8.0),
    _cn("GD", "Guangzhou", 23.129, 113.264, "tier_1", 6.0),
    _cn("GD", "Shenzhen", 22.543, 114.058, "tier_1", 6.0),
    _cn("GD", "Dongguan", 23.021, 113.752, "new_tier_1", 3.0),
    _cn("GD", "Foshan", 23.022, 113.122, "new_tier_1", 2.5),
    _cn("GD", "Zhuhai", 22.271, 113.577, "tier_2", 1.0),
    _cn("GD", "Shantou", 23.354, 116.682, "tier_3", 1.0),
    _cn("ZJ", "Hangzhou", 30.274, 120.155, "new_tier_1", 4.0),
    _cn("ZJ", "Ningbo", 29.868, 121.544, "new_tier_1", 2.0),
    _cn("ZJ", "Wenzhou", 27.994, 120.699, "tier_2", 1.5),
    _cn("ZJ", "Shaoxing", 30.000, 120.580, "tier_2", 1.0),
    _cn("JS", "Nanjing", 32.060, 118.797, "new_tier_1", 3.0),
    _cn("JS", "Suzhou", 31.299, 120.585, "new_tier_1", 3.0),
    _cn("JS", "Wuxi", 31.491, 120.312, "tier_2", 1.5),
    _cn("JS", "Xuzhou", 34.262, 117.185, "tier_2", 1.0),
    _cn("SC", "Chengdu", 30.573, 104.066, "new_tier_1", 4.5),
    _cn("SC", "Mianyang", 31.468, 104.679, "tier_3", 1.0),
    _cn("SC", "Yibin", 28.752, 104.643, "tier_3", 0.8),
    _cn("HB", "Wuhan", 30.593, 114.305, "new_tier_1", 4.0),
    _cn("HB", "Yichang", 30.692, 111.286, "tier_3", 0.8),
    _cn("HB", "Xiangyang", 32.009, 112.122, "tier_3", 0.8),
    _cn("FJ", "Fuzhou", 26.074, 119.296, "tier_2", 1.5),
    _cn("FJ", "Xiamen", 24.480, 118.089, "tier_2", 1.5),
    _cn("FJ", "Quanzhou", 24.874, 118.676, "tier_2", 1.2),
    _cn("SD", "Qingdao", 36.067, 120.383, "new_tier_1", 2.0),
    _cn("SD", "Jinan", 36.651, 117.120, "tier_2", 1.5),
    _cn("HA", "Zhengzhou", 34.747, 113.625, "new_tier_1", 2.5),
    _cn("HA", "Luoyang", 34.619, 112.454, "tier_3", 0.8),
    _cn("HN", "Changsha", 28.228, 112.939, "new_tier_1", 2.5),
    _cn("SN", "Xi'an", 34.341, 108.940, "new_tier_1", 2.5),
    _cn("CQ", "Chongqing", 29.563, 106.551, "new_tier_1", 3.5),
    _cn("TJ", "Tianjin", 39.343, 117.362, "new_tier_1", 2.5),
    _abroad("USA", "CA", "Los Angeles", 34.052, -118.244, 1.5),
    _abroad("USA", "CA", "San Francisco", 37.775, -122.419, 1.0),
    _abroad("USA", "NY", "New York", 40.713, -74.006, 2.0),
    _abroad("USA", "TX", "Houston", 29.760, -95.370, 0.8),
    _abroad("GBR", "ENG", "London", 51.507, -0.128, 1.5),
    _abroad("GBR", "ENG", "Manchester", 53.481, -2.243, 0.5),
    _abroad("GBR", "SCT", "Edinburgh", 55.953, -3.188, 0.4),
    _abroad("DEU", "BE", "Berlin", 52.520, 13.405, 0.9),
    _abroad("DEU", "BY", "Munich", 48.135, 11.582, 0.7),
    _abroad("DEU", "HH", "Hamburg", 53.551, 9.994, 0.5),
    _abroad("FRA", "IDF", "Paris", 48.857, 2.352, 1.2),
    _abroad("FRA", "ARA", "Lyon", 45.764, 4.836, 0.5),
    _abroad("JPN", "13", "Tokyo", 35.690, 139.692, 2.0),
    _abroad("JPN", "27", "Osaka", 34.694, 135.502, 1.0),
)

"""Deterministic Chinese place and person names for the demo city."""

from __future__ import annotations

import numpy as np

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段")
GIVEN = list("伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华玉兰萍红建国文辉鹏飞宇浩凯欣悦晨阳宁波斌海峰雪梅琳颖春林东亮成志刚德胜利云凤玲")
PLACE = list("银清柳岭河山泉安兴福德和平新华东西南北中阳光明丰盛宁康泰乐富贵长春秋松桥湾台屯营堡沟家岗坡庄园树林石凤龙虎马鹿")

COUNTY_NAMES = {
    "211202": ("银州区", "district"),
    "211204": ("清河区", "district"),
    "211221": ("铁岭县", "county"),
    "211223": ("西丰县", "county"),
    "211224": ("昌图县", "county"),
    "211281": ("调兵山市", "county_city"),
    "211282": ("开原市", "county_city"),
}


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    s = rng.choice(len(SURNAMES), n)
    g1 = rng.choice(len(GIVEN), n)
    g2 = rng.choice(len(GIVEN) + 40, n)  # ~30% two-character names
    return [
        SURNAMES[a] + GIVEN[b] + (GIVEN[c] if c < len(GIVEN) else "")
        for a, b, c in zip(s, g1, g2, strict=True)
    ]


def phones(rng: np.random.Generator, n: int) -> list[str]:
    prefix = rng.choice(["138", "139", "150", "151", "158", "186", "187", "135", "133", "177"], n)
    rest = rng.integers(0, 100_000_000, n)
    return [f"{p}{r:08d}" for p, r in zip(prefix, rest, strict=True)]


class PlaceNamer:
    """Unique two-character place stems, so no two units of a city share a name."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def stem(self) -> str:
        for _ in range(10_000):
            a, b = self._rng.choice(len(PLACE), 2, replace=False)
            s = PLACE[a] + PLACE[b]
            if s not in self._used:
                self._used.add(s)
                return s
        # Fall back to three characters once the pairs run out.
        while True:
            a, b, c = self._rng.choice(len(PLACE), 3, replace=False)
            s = PLACE[a] + PLACE[b] + PLACE[c]
            if s not in self._used:
                self._used.add(s)
                return s

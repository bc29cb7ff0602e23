"""The seeded people and organisations, shared by every simulator and the demo.

All ID numbers carry valid GB 11643 check characters and all credit codes valid GB 32100 ones;
they are invented and belong to nobody.
"""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = ["DEMO_CITIZEN", "ENTERPRISES", "PEOPLE", "SeedEnterprise", "SeedPerson"]


class SeedPerson(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id_number: str
    mobile: str
    gender: str
    alive: bool = True
    # Attributes the other upstreams know about (social security, health, concessions).
    social_security_number: str | None = None
    health_card_id: str | None = None


class SeedEnterprise(msgspec.Struct, frozen=True, kw_only=True):
    credit_code: str
    name: str
    kind: str
    status: str
    legal_representative_id_number: str
    registered_on: dt.date


PEOPLE: tuple[SeedPerson, ...] = (
    # The demo citizen of `make run`: an adult who rides, tops up and runs a company.
    SeedPerson(
        name="张三",
        id_number="44030419900307123X",
        mobile="13800138000",
        gender="M",
        social_security_number="440304199003071230",
        health_card_id="HC4403000001",
    ),
    SeedPerson(
        name="李四",
        id_number="310115198506152343",
        mobile="13900139000",
        gender="F",
        social_security_number="310115198506152340",
        health_card_id="HC3101150002",
    ),
    SeedPerson(  # a senior: free rides
        name="王五",
        id_number="11010519491231002X",
        mobile="13700137000",
        gender="M",
        social_security_number="110105194912310020",
        health_card_id="HC1101050003",
    ),
    SeedPerson(  # a student: half fare
        name="赵六",
        id_number="110108200511203458",
        mobile="13600136000",
        gender="M",
        health_card_id="HC1101080004",
    ),
    SeedPerson(name="钱七", id_number="320583196001014560", mobile="13500135000", gender="F", alive=False),
    SeedPerson(name="孙八", id_number="110101197001010016", mobile="13400134000", gender="M"),
)

DEMO_CITIZEN = PEOPLE[0]

ENTERPRISES: tuple[SeedEnterprise, ...] = (
    SeedEnterprise(
        credit_code="91440300MA5FXY012P",
        name="深圳市三川科技有限公司",
        kind="limited_company",
        status="active",
        legal_representative_id_number=PEOPLE[0].id_number,
        registered_on=dt.date(2016, 5, 20),
    ),
    SeedEnterprise(
        credit_code="12110000MB0123456Y",
        name="北京市公共交通研究所",
        kind="public_institution",
        status="active",
        legal_representative_id_number=PEOPLE[1].id_number,
        registered_on=dt.date(2001, 3, 1),
    ),
    SeedEnterprise(
        credit_code="52310115MJ12345675",
        name="上海浦东志愿者协会",
        kind="social_organisation",
        status="revoked",
        legal_representative_id_number=PEOPLE[5].id_number,
        registered_on=dt.date(2012, 9, 9),
    ),
)

"""The seeded people and organisations, shared by every simulator and the demo.

All ID numbers carry valid GB 11643 check characters and all credit codes valid GB 32100 ones;
they are invented and belong to nobody.
"""

from __future__ import annotations

import datetime as dt

import msgspec

__all__ = [
    "APPLICATIONS",
    "BUS_STOPS",
    "DEMO_CITIZEN",
    "DEPARTMENTS",
    "ENTERPRISES",
    "LICENCES",
    "PEOPLE",
    "UTILITY_ACCOUNTS",
    "SeedApplication",
    "SeedBusStop",
    "SeedDepartment",
    "SeedEnterprise",
    "SeedLicence",
    "SeedPerson",
    "SeedUtilityAccount",
]


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


# --- What the other upstreams hold (integrations' simulators), for the same people ---


class SeedUtilityAccount(msgspec.Struct, frozen=True, kw_only=True):
    account_number: str
    holder_id_number: str
    kind: str  # "electricity", "water", "gas"
    provider: str
    address: str


class SeedBusStop(msgspec.Struct, frozen=True, kw_only=True):
    stop_id: str
    name: str
    lines: tuple[str, ...]


class SeedLicence(msgspec.Struct, frozen=True, kw_only=True):
    """An electronic licence or certificate (电子证照)."""

    licence_number: str
    holder_id_number: str
    kind: str  # "resident_id", "driving_licence", "business_licence", "residence_permit"
    title: str
    issuer: str
    issued_on: dt.date
    expires_on: dt.date | None = None
    credit_code: str | None = None  # a licence held by an organisation its representative acts for


class SeedApplication(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    applicant_id_number: str
    service: str
    status: str  # "submitted", "in_review", "approved", "rejected", "completed"
    submitted_on: dt.date


class SeedDepartment(msgspec.Struct, frozen=True, kw_only=True):
    department_id: str
    hospital: str
    name: str


UTILITY_ACCOUNTS: tuple[SeedUtilityAccount, ...] = (
    SeedUtilityAccount(
        account_number="E0440304001",
        holder_id_number=PEOPLE[0].id_number,
        kind="electricity",
        provider="深圳供电局",
        address="深圳市福田区福中三路1号",
    ),
    SeedUtilityAccount(
        account_number="W0440304001",
        holder_id_number=PEOPLE[0].id_number,
        kind="water",
        provider="深圳市水务集团",
        address="深圳市福田区福中三路1号",
    ),
    SeedUtilityAccount(
        account_number="G0440304001",
        holder_id_number=PEOPLE[0].id_number,
        kind="gas",
        provider="深圳燃气",
        address="深圳市福田区福中三路1号",
    ),
    SeedUtilityAccount(
        account_number="E0310115002",
        holder_id_number=PEOPLE[1].id_number,
        kind="electricity",
        provider="国网上海市电力公司",
        address="上海市浦东新区世纪大道100号",
    ),
    SeedUtilityAccount(
        account_number="W0110105003",
        holder_id_number=PEOPLE[2].id_number,
        kind="water",
        provider="北京市自来水集团",
        address="北京市朝阳区朝阳门外大街1号",
    ),
)

BUS_STOPS: tuple[SeedBusStop, ...] = (
    SeedBusStop(stop_id="SZ-FT-001", name="市民中心", lines=("M390", "60", "215")),
    SeedBusStop(stop_id="SZ-FT-002", name="福田交通枢纽", lines=("M390", "E11", "338")),
    SeedBusStop(stop_id="SZ-FT-003", name="车公庙", lines=("60", "338")),
)

LICENCES: tuple[SeedLicence, ...] = (
    SeedLicence(
        licence_number="EID-44030419900307123X",
        holder_id_number=PEOPLE[0].id_number,
        kind="resident_id",
        title="居民身份证电子证照",
        issuer="深圳市公安局福田分局",
        issued_on=dt.date(2020, 4, 1),
        expires_on=dt.date(2040, 4, 1),
    ),
    SeedLicence(
        licence_number="DL-440304-0001",
        holder_id_number=PEOPLE[0].id_number,
        kind="driving_licence",
        title="机动车驾驶证电子证照",
        issuer="深圳市公安局交通警察局",
        issued_on=dt.date(2012, 8, 15),
        expires_on=dt.date(2028, 8, 15),
    ),
    SeedLicence(
        licence_number="BL-91440300MA5FXY012P",
        holder_id_number=PEOPLE[0].id_number,
        kind="business_licence",
        title="营业执照电子证照",
        issuer="深圳市市场监督管理局",
        issued_on=dt.date(2016, 5, 20),
        credit_code=ENTERPRISES[0].credit_code,
    ),
    SeedLicence(
        licence_number="EID-310115198506152343",
        holder_id_number=PEOPLE[1].id_number,
        kind="resident_id",
        title="居民身份证电子证照",
        issuer="上海市公安局浦东分局",
        issued_on=dt.date(2015, 6, 1),
        expires_on=dt.date(2035, 6, 1),
    ),
)

APPLICATIONS: tuple[SeedApplication, ...] = (
    SeedApplication(
        application_id="GS-2026-000101",
        applicant_id_number=PEOPLE[0].id_number,
        service="居住证签注",
        status="in_review",
        submitted_on=dt.date(2026, 11, 2),
    ),
    SeedApplication(
        application_id="GS-2026-000087",
        applicant_id_number=PEOPLE[0].id_number,
        service="公积金提取",
        status="completed",
        submitted_on=dt.date(2026, 9, 14),
    ),
    SeedApplication(
        application_id="GS-2026-000120",
        applicant_id_number=PEOPLE[1].id_number,
        service="出入境证件办理",
        status="approved",
        submitted_on=dt.date(2026, 10, 28),
    ),
)

DEPARTMENTS: tuple[SeedDepartment, ...] = (
    SeedDepartment(department_id="SZPH-IM", hospital="深圳市人民医院", name="内科"),
    SeedDepartment(department_id="SZPH-DERM", hospital="深圳市人民医院", name="皮肤科"),
    SeedDepartment(department_id="FTCH-PED", hospital="福田区妇幼保健院", name="儿科"),
)

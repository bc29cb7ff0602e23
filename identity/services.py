"""The identity services as one object: the ``identity`` named dependency."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from identity.admin.service import AdminService
from identity.context import ClientInfo, client_info
from identity.core import IdentityCore
from identity.organisations.service import OrganisationService
from identity.persons.account import AccountService
from identity.persons.factors import FactorService
from identity.persons.mobile import MobileService
from identity.persons.service import PersonService

__all__ = ["IdentityServices"]


class IdentityServices:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core
        self.persons = PersonService(core)
        self.factors = FactorService(core)
        self.accounts = AccountService(core)
        self.mobile = MobileService(core, self.accounts)
        self.organisations = OrganisationService(core)
        self.admin = AdminService(core)

    def client(self, connection: ASGIConnection[Any, Any, Any, Any]) -> ClientInfo:
        return client_info(connection, self.core.request_id)

"""The offline demo provider as config rows: added on a fresh install, removable.

The provider is an ordinary row of type ``demo`` (not created by a config file, so
``import_config`` leaves it alone); its one model ``demo`` is priced at zero, so its
usage shows a cost of 0 rather than "no price".
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from llmproxy.providers.demo import DEMO

from ..models import Credential, ModelRoute, Provider


def demo_providers() -> list[Provider]:
    return list(Provider.objects.filter(type=DEMO))


@transaction.atomic
def add_demo_provider() -> Provider | None:
    """Configure the demo provider; None if one is there already."""
    if Provider.objects.filter(type=DEMO).exists():
        return None
    name = DEMO if not Provider.objects.filter(name=DEMO).exists() else "demo-offline"
    provider = Provider.objects.create(name=name, type=DEMO, priority=-1000)
    Credential.objects.create(provider=provider, name="offline")
    ModelRoute.objects.create(provider=provider, name=DEMO, input_price=Decimal(0), output_price=Decimal(0))
    return provider


@transaction.atomic
def remove_demo_provider() -> int:
    """Remove every provider of type demo (with its credential and route); how many."""
    _, per_model = Provider.objects.filter(type=DEMO).delete()
    return per_model.get(Provider._meta.label, 0)

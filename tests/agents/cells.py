"""One cell of the CLI tests: a model routed to a fake upstream playing an agent's model, and the CLI run on it.

``test_clis`` (does the tool call come back?) and ``test_affinity`` (does the conversation stay
on one credential?) set a cell up the same way; only the second gives the provider a second key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.models import Credential, Provider
from tests import factories
from tests.agents.clis import CLIS, PROMPT, Run
from tests.fakes import FakeUpstream
from tests.fakes.agent import Agent
from tests.fakes.matrix import UPSTREAMS
from tests.fakes.matrix_accounts import ACCOUNT_UPSTREAMS

#: Every upstream a cell may name: the API-key dialects and the account ones.
EVERY = {**UPSTREAMS, **ACCOUNT_UPSTREAMS}


def route(live: Any, fake: FakeUpstream, dialect: str, names: tuple[str, ...], *, second_key: str = "") -> None:
    """Route ``names`` to ``fake`` as ``dialect``'s upstream; ``second_key`` adds a credential with that key."""
    up = EVERY[dialect]
    models = [{"name": n, "upstream": up.model, "input_price": "1", "output_price": "2"} for n in names]
    p = factories.provider(f"agents-{dialect}", fake.url + up.suffix, type=up.type, models=models)
    Provider.objects.filter(pk=p.pk).update(options=up.options, auth_type=up.auth_type)
    if up.credential:  # an account: its tokens instead of the factory's API key
        for cred in p.credentials.all():
            cred.api_key = ""
            for k, v in up.credential.items():
                setattr(cred, k, v)
            cred.save()
    if second_key:
        Credential.objects.create(provider=p, name="key-2", api_key=second_key)
    live.reload()


def run_cell(
    cell: str, live: Any, fake: FakeUpstream, key: str, home: Path, *, second_key: str = ""
) -> tuple[Agent, Run]:
    """Run ``cell`` (``"<cli>-><dialect>"``): the CLI against the live gateway, ``fake`` playing its model."""
    cli_name, dialect = cell.split("->")
    cls = CLIS[cli_name]
    route(live, fake, dialect, (cls.model_name, *cls.extra_models), second_key=second_key)
    agent = Agent(EVERY[dialect])
    fake.default("*", agent)
    cli = cls(home, live.url, key, cls.model_name)
    return agent, cli.run(PROMPT.format(command=agent.command))

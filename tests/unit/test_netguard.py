"""The SSRF guard: image URLs reach public addresses only, each redirect checked, size capped."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from llmproxy.errors import InvalidRequest
from llmproxy.images import ImageSettings, inline_images
from llmproxy.model import ImagePart, Message, Request, TextPart
from llmproxy.netguard import FetchRefused, GuardedFetcher, is_public
from tests.fakes.server import FakeUpstream, Reply, Stream

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
IMAGE = Reply(raw=PNG, headers={"content-type": "image/png"})


class Lookup:
    """A resolver for names that real DNS does not know; answers in turn, counting calls."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[tuple[int, str]]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [(10 if ":" in a else 2, a) for a in answer]


def _request(url: str) -> Request:
    return Request("gemini-x", [Message("user", [TextPart("look"), ImagePart(url=url)])])


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1",
     "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "::ffff:169.254.169.254", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe", "2001:db8::1"],
)  # fmt: skip
def test_is_public_refuses_every_non_public_range(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"])
def test_is_public_accepts_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "template",
    ["http://127.0.0.1:{port}/a.png", "http://localhost:{port}/a.png", "http://[::1]:{port}/a.png",
     "http://[::ffff:127.0.0.1]:{port}/a.png", "http://0x7f000001:{port}/a.png", "http://127.1:{port}/a.png",
     "http://2130706433:{port}/a.png", "http://169.254.169.254/latest/meta-data/", "https://10.0.0.1/a.png"],
)  # fmt: skip
async def test_it_refuses_private_addresses_before_connecting(fake: FakeUpstream, template: str) -> None:
    fake.default("/a.png", IMAGE)
    url = template.format(port=fake.port)
    with pytest.raises(InvalidRequest) as exc:
        await inline_images(_request(url))
    assert exc.value.status == 400 and exc.value.param == "image_url"
    assert exc.value.message.startswith(f"image URL {url} was refused")
    assert fake.requests == []


async def test_a_name_that_resolves_to_a_private_address_is_refused(fake: FakeUpstream) -> None:
    fake.default("/a.png", IMAGE)
    lookup = Lookup(["127.0.0.1"])
    with pytest.raises(InvalidRequest, match="was refused: it is not a public address"):
        await inline_images(_request(f"http://images.example.com:{fake.port}/a.png"), lookup=lookup)
    assert lookup.calls == ["images.example.com"] and fake.requests == []


async def test_one_private_address_among_public_ones_refuses_the_host(fake: FakeUpstream) -> None:
    lookup = Lookup(["8.8.8.8", "10.0.0.7"])
    with pytest.raises(InvalidRequest, match="not a public address"):
        await inline_images(_request(f"http://mixed.example.com:{fake.port}/a.png"), lookup=lookup)
    assert fake.requests == []


async def test_it_connects_to_the_address_it_checked(fake: FakeUpstream) -> None:
    """The name is resolved once, by the guard; the connection uses that answer, not a new lookup."""
    fake.default("/a.png", IMAGE)
    fake.default("/b.png", IMAGE)
    # A second lookup would answer an unroutable address: the fetch works only if none happens.
    lookup = Lookup(["127.0.0.1"], ["192.0.2.1"])
    settings = ImageSettings(allow_hosts=(f"store.internal:{fake.port}",))
    async with GuardedFetcher(settings, lookup=lookup) as fetcher:
        got = await fetcher.get(f"http://store.internal:{fake.port}/a.png", "image/*")
        again = await fetcher.get(f"http://store.internal:{fake.port}/b.png", "image/*")
    assert got.data == PNG and again.data == PNG and got.content_type == "image/png"
    assert lookup.calls == ["store.internal"]  # one lookup; the kept-alive connection served the second
    assert fake.requests[0].headers["host"] == f"store.internal:{fake.port}"
    assert fake.requests[0].headers["user-agent"].startswith("llmproxy")


@pytest.mark.parametrize(
    ("entry", "host", "port", "exempt"),
    [("store.internal", "Store.Internal.", 8080, True), ("store.internal:8080", "store.internal", 8080, True),
     ("store.internal:8080", "store.internal", 9090, False), ("other.internal", "store.internal", 80, False),
     ("[::1]:8080", "::1", 8080, True), ("10.0.0.5", "10.0.0.5", 443, True)],
)  # fmt: skip
def test_allow_hosts_takes_names_and_host_port(entry: str, host: str, port: int, exempt: bool) -> None:
    assert ImageSettings(allow_hosts=(entry,)).exempt(host, port) is exempt


async def test_allow_hosts_does_not_open_other_hosts(fake: FakeUpstream) -> None:
    settings = ImageSettings(allow_hosts=("store.internal",))
    with pytest.raises(InvalidRequest, match="not a public address"):
        await inline_images(_request(f"{fake.url}/a.png"), settings=settings)
    assert fake.requests == []


@pytest.mark.parametrize("location", ["http://127.0.0.1:{port}/secret", "http://evil.example.com:{port}/secret",
                                      "http://[::ffff:7f00:1]:{port}/secret"])  # fmt: skip
async def test_each_redirect_is_checked(fake: FakeUpstream, location: str) -> None:
    fake.default("/start", Reply(status=302, headers={"location": location.format(port=fake.port)}))
    fake.default("/secret", IMAGE)
    lookup = Lookup(["127.0.0.1"], ["10.0.0.9"])
    settings = ImageSettings(allow_hosts=(f"store.internal:{fake.port}",))
    with pytest.raises(InvalidRequest, match="not a public address"):
        await inline_images(_request(f"http://store.internal:{fake.port}/start"), settings=settings, lookup=lookup)
    assert [r.path for r in fake.requests] == ["/start"]


@pytest.mark.parametrize(("hops", "ok"), [(3, True), (4, False)])
async def test_at_most_three_redirects(fake: FakeUpstream, hops: int, ok: bool) -> None:
    for i in range(hops):
        fake.default(f"/r{i}", Reply(status=301 if i % 2 else 307, headers={"location": f"/r{i + 1}"}))
    fake.default(f"/r{hops}", IMAGE)
    req = _request(f"{fake.url}/r0")
    if ok:
        assert await inline_images(req, settings=ImageSettings(allow_private=True)) == 1
        return
    with pytest.raises(InvalidRequest, match="redirected more than 3 times"):
        await inline_images(req, settings=ImageSettings(allow_private=True))
    assert len(fake.requests) == 4


async def test_the_size_cap_holds_without_a_content_length(fake: FakeUpstream) -> None:
    fake.default("/big", Stream([PNG] * 50, headers={"content-type": "image/png"}))
    settings = ImageSettings(allow_private=True, max_bytes=1000)
    with pytest.raises(InvalidRequest, match="larger than 1000 bytes"):
        await inline_images(_request(f"{fake.url}/big"), settings=settings)


async def test_only_http_urls_are_fetched() -> None:
    async with GuardedFetcher(ImageSettings(allow_private=True)) as fetcher:
        for url in ("file:///etc/passwd", "ftp://x.example.com/a.png", "http:///nohost"):
            with pytest.raises(FetchRefused):
                await fetcher.get(url, "image/*")

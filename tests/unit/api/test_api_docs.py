"""/docs, /redoc and / work with no internet: every file they load is served by the node itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.helpers.clients import TestClient, make_client

from logfactory.bus.local import LocalBus
from logfactory.config import Config, NodeConfig

# what each kind of asset must be served as (the browser refuses a script sent as text/plain
# when the page asks for nosniff, and a stylesheet of the wrong type is ignored)
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _Refs(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if tag == "script" and "src" in values:
            self.urls.append(values["src"])
        elif tag == "link" and "href" in values:
            self.urls.append(values["href"])
        elif tag == "redoc" and "spec-url" in values:
            self.urls.append(values["spec-url"])
        elif tag == "a" and "href" in values:
            self.links.append(values["href"])


def refs(page: str) -> _Refs:
    parser = _Refs()
    parser.feed(page)
    return parser


@pytest.fixture
def client(tmp_path: Path, local_bus: LocalBus) -> Iterator[TestClient]:
    c, ctx = make_client(tmp_path, local_bus, Config(node=NodeConfig(name="hpc<1>")))
    with c:
        yield c
    ctx.producer.close()


@pytest.mark.parametrize(
    ("page", "script_marker"), [("/docs", b"SwaggerUIBundle"), ("/redoc", b"Redoc")]
)
def test_docs_page_loads_only_files_the_node_serves(
    client: TestClient, page: str, script_marker: bytes
) -> None:
    resp = client.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    # no host at all: not a CDN, not Google Fonts, not Swagger's online validator
    assert "://" not in resp.text, re.findall(r"\S*://\S*", resp.text)
    assert "fonts.googleapis" not in resp.text
    # ReDoc's bundle itself asks cdn.redoc.ly for a logo: the browser must be told to refuse
    policy = dict(
        d.strip().split(" ", 1) for d in resp.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert not [v for v in policy.values() if re.search(r"https?:|\*", v)], policy
    found = refs(resp.text)
    scripts = [u for u in found.urls if u.endswith(".js")]
    assert scripts, f"{page} loads no script"
    assert any(u.endswith(".png") for u in found.urls), f"{page} has no local favicon"
    for url in found.urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        ctype = asset.headers["content-type"].split(";")[0]
        want = CONTENT_TYPES.get(Path(url).suffix, ("application/json",))
        assert ctype in want, (url, ctype)
        assert asset.content, url
    assert any(script_marker in client.get(u).content for u in scripts)


def test_swagger_ui_reads_the_spec_the_node_serves(client: TestClient) -> None:
    page = client.get("/docs").text
    spec_url = re.search(r"url: '([^']+)'", page)
    assert spec_url is not None
    spec = client.get(spec_url.group(1))
    assert spec.status_code == 200
    assert "/api/v1/ingest" in spec.json()["paths"]
    assert '"validatorUrl": null' in page  # the online validator badge is switched off


def test_root_page_links_to_the_docs_and_health(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    links = refs(resp.text).links
    assert links == ["/docs", "/redoc", "/api/v1/health"]
    assert "hpc&lt;1&gt;" in resp.text
    assert "hpc<1>" not in resp.text
    for link in links[:2]:
        assert client.get(link).status_code == 200
    assert client.get(links[2]).status_code in (200, 503)  # 503: no factory runs in this test


def test_docs_routes_stay_out_of_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(paths)
    assert not [p for p in paths if p.startswith("/docs/")]

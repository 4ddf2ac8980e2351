from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.config import Config


async def test_healthz_answers_ok(aiohttp_client, config: Config) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(create_app(config))
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
